"""Synthetic DICOM objects for tests and benchmarks (no patient data anywhere)."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from highdicom.ko import KeyObjectSelection, KeyObjectSelectionDocument
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    XRayAngiographicImageStorage,
    generate_uid,
)


def new_dataset(sop_class: str, study_uid: str, series_uid: str) -> Dataset:
    """An instance of `sop_class` with a fresh SOP Instance UID and its File Meta, explicit VR
    little endian: what every factory here starts from."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    return ds


def _grey_pixels(ds: Dataset, size: int, frames: int, rng: np.random.Generator) -> None:
    """`frames` random 12-bit greyscale frames of `size` x `size` in 16-bit words."""
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = rng.integers(0, 4096, frames * size * size, dtype=np.uint16).tobytes()


def ct_dataset(
    study_uid: str,
    series_uid: str,
    number: int,
    *,
    size: int = 512,
    patient_id: str = "TEST-0001",
    seed: int = 0,
) -> Dataset:
    """A CT slice: `size` x `size`, 16-bit, explicit VR little endian."""
    ds = new_dataset(CTImageStorage, study_uid, series_uid)
    ds.PatientID = patient_id
    ds.PatientName = "Test^Patient"
    ds.Modality = "CT"
    ds.StudyDate = "20261127"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    _grey_pixels(ds, size, 1, np.random.default_rng(seed + number))
    return ds


def multiframe_dataset(frames: int, *, size: int = 512, seed: int = 0) -> Dataset:
    """A multi-frame XA run: `frames` frames of `size` x `size` 16-bit pixels (512 KiB each
    at the default size), explicit VR little endian, in a study and series of its own."""
    ds = new_dataset(XRayAngiographicImageStorage, generate_uid(), generate_uid())
    ds.PatientID = "TEST-XA-0001"
    ds.PatientName = "Test^Angio"
    ds.Modality = "XA"
    ds.StudyDate = "20261127"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.NumberOfFrames = frames
    ds.FrameTime = 33.3
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    _grey_pixels(ds, size, frames, np.random.default_rng(seed))
    return ds


def part10_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_series(
    count: int, *, size: int = 512, study_uid: str | None = None, patient_id: str = "TEST-0001"
) -> Iterator[Dataset]:
    study = study_uid or generate_uid()
    series = generate_uid()
    for number in range(1, count + 1):
        yield ct_dataset(study, series, number, size=size, patient_id=patient_id)


def write_series(folder: Path, datasets: Iterator[Dataset]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def key_object_selection(
    rejected: list[Dataset], title: Code | None = None, series_number: int = 99
) -> Dataset:
    """A Key Object Selection Document (highdicom) listing `rejected`, in their study; titled
    "Rejected for Quality Reasons" (an IOCM rejection note) unless `title` says otherwise."""
    # highdicom copies the Patient and Study modules from the evidence: their type 2
    # attributes must be there (empty), which the synthetic images leave out.
    evidence = [copy.deepcopy(ds) for ds in rejected]
    for ds in evidence:
        for keyword in ("PatientBirthDate", "PatientSex", "StudyTime", "StudyID",
                        "AccessionNumber", "ReferringPhysicianName"):  # fmt: skip
            setattr(ds, keyword, getattr(ds, keyword, ""))
    content = KeyObjectSelection(
        document_title=title or codes.DCM.RejectedForQualityReasons,
        referenced_objects=evidence,
    )
    document = KeyObjectSelectionDocument(
        evidence=evidence,
        content=content,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="PACS tests",
    )
    return document
