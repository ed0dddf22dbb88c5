"""Synthetic `pacs.instance.received` events, for read-model tests and benchmarks at scale.

Each instance gets a realistic CT header (as the gateway would have described it), with
its own UIDs and patient/study attributes, so the catalog does its real work per event.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from infra.dicom.header import bulkdata_path, read_header
from schemas.events import InstanceReceived, InstanceRef, fact_event_id
from tests.dicom_factory import ct_dataset, part10_bytes

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
_NAMES = ["SMITH", "JONES", "GARCIA", "MILLER", "DAVIS", "LOPEZ", "WILSON", "TAYLOR", "MOORE"]
_GIVEN = ["ANNA", "BEN", "CARLA", "DAVID", "EMMA", "FRANK", "GRACE", "HUGO", "IRIS", "JOHN"]


def _template() -> dict[str, Any]:
    ds = ct_dataset(generate_uid(), generate_uid(), 1, size=4)
    ds.Manufacturer = "SYNTHETIC"
    ds.SliceThickness = "1.25"
    ds.ImagePositionPatient = ["-250.0", "-250.0", "0.0"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["0.9765625", "0.9765625"]
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    header = read_header(part10_bytes(ds), metadata=True)
    assert header.metadata is not None
    return header.metadata


def _set(metadata: dict[str, Any], tag: str, vr: str, value: Any) -> None:
    metadata[tag] = {"vr": vr, "Value": [value]}


def synthetic_events(
    instances: int,
    per_series: int = 50,
    series_per_study: int = 4,
    seed: int = 1,
    patient_prefix: str = "SYN",
) -> Iterator[InstanceReceived]:
    """`instances` events: studies of `series_per_study` series of `per_series` instances,
    two studies per patient, study dates spread over ten years."""
    rng = random.Random(seed)
    template = _template()
    base_time = datetime(2026, 1, 1, tzinfo=UTC)
    made = 0
    study_number = 0
    while made < instances:
        study_number += 1
        patient = f"{patient_prefix}{(study_number + 1) // 2:07d}"
        name = f"{rng.choice(_NAMES)}^{rng.choice(_GIVEN)}"
        study = generate_uid(entropy_srcs=[str(seed), "study", str(study_number)])
        date = (datetime(2016, 1, 1) + timedelta(days=rng.randrange(3650))).strftime("%Y%m%d")
        for series_index in range(1, series_per_study + 1):
            modality, sop_class = ("MR", MR) if series_index % 4 == 0 else ("CT", CT)
            series = generate_uid(entropy_srcs=[study, str(series_index)])
            for number in range(1, per_series + 1):
                if made >= instances:
                    return
                sop = generate_uid(entropy_srcs=[series, str(number)])
                # Shallow: only the elements set below differ, the rest is shared read-only.
                metadata = dict(template)
                _set(metadata, "00100020", "LO", patient)
                _set(metadata, "00100010", "PN", {"Alphabetic": name})
                _set(metadata, "0020000D", "UI", study)
                _set(metadata, "0020000E", "UI", series)
                _set(metadata, "00080018", "UI", sop)
                _set(metadata, "00080016", "UI", sop_class)
                _set(metadata, "00080060", "CS", modality)
                _set(metadata, "00080020", "DA", date)
                _set(metadata, "00080050", "SH", f"ACC{study_number:08d}")
                _set(metadata, "00200011", "IS", series_index)
                _set(metadata, "00200013", "IS", number)
                metadata["7FE00010"] = {
                    "vr": "OW",
                    "BulkDataURI": bulkdata_path(study, series, sop, "7FE00010"),
                }
                sha = hashlib.sha256(sop.encode()).hexdigest()
                ref = InstanceRef(
                    study_instance_uid=study, series_instance_uid=series,
                    sop_instance_uid=sop, sop_class_uid=sop_class, sha256=sha, size=525_000,
                )  # fmt: skip
                yield InstanceReceived(
                    event_id=fact_event_id("received", sop, sha, ""),
                    occurred_at=base_time + timedelta(milliseconds=made),
                    instance=ref,
                    transfer_syntax_uid="1.2.840.10008.1.2.1",
                    patient_id=patient,
                    modality=modality,
                    landing_mode="spool",
                    landing_key=f"{study}/{series}/{sop}.{sha}.dcm",
                    via="dimse",
                    calling_ae="SYNTH",
                    metadata=metadata,
                )
                made += 1


def part10_from_event(event: InstanceReceived) -> bytes:
    """A real Part-10 object (4x4 pixels) carrying exactly the event's header."""
    assert event.metadata is not None
    header = {k: v for k, v in event.metadata.items() if "BulkDataURI" not in v}
    ds = Dataset.from_json(header)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = bytes(2 * int(ds.Rows) * int(ds.Columns))
    return part10_bytes(ds)
