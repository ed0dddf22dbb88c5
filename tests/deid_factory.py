"""Identified test objects for de-identification: a CT series full of (invented) PHI, and an
SR that references it (highdicom). Nothing here is real patient data."""

from __future__ import annotations

from collections.abc import Sequence as Seq

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, generate_uid

from tests.dicom_factory import new_dataset

PATIENT_ID = "MRN-4711-0815"
PATIENT_NAME = "Doe^Jonathan^Q"
BIRTH_DATE = "19580412"
INSTITUTION = "Saint Elsewhere Hospital"
PHYSICIAN = "House^Gregory"
OPERATOR = "Nurse^Carla"
STATION = "CTROOM7"
SERIAL = "SN-998877"
# A private element no safe list knows (removed), and a safe-listed b-value (kept).
SECRET_CREATOR = "ACME SECRETS"
SAFE_CREATOR = "GEMS_PARM_01"


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def identified_ct_series(count: int, *, size: int = 64, seed: int = 0) -> list[Dataset]:
    """A CT series of `count` slices with the modules the CT Image IOD requires, a
    reference from each slice to the previous one, private attributes, and PHI in
    top-level, nested and free-text attributes."""
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(seed)
    slices: list[Dataset] = []
    for number in range(1, count + 1):
        ds = new_dataset(CTImageStorage, study, series)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceCreationDate = "20261127"
        ds.InstanceCreationTime = "101500"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20261127"
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101010"
        ds.AccessionNumber = "ACC-20261127-42"
        ds.Modality = "CT"
        ds.Manufacturer = "ACME Medical"
        ds.InstitutionName = INSTITUTION
        ds.InstitutionAddress = "1 Hospital Road, Boston"
        ds.ReferringPhysicianName = PHYSICIAN
        ds.StationName = STATION
        ds.StudyDescription = f"CT chest {PATIENT_NAME.split('^')[0]} follow-up 12.04.1958"
        ds.SeriesDescription = "Axial 5mm"
        ds.OperatorsName = OPERATOR
        ds.PerformingPhysicianName = PHYSICIAN
        ds.ManufacturerModelName = "Scanomatic 64"
        ds.DeviceSerialNumber = SERIAL
        ds.SoftwareVersions = "1.0"
        ds.PatientName = PATIENT_NAME
        ds.PatientID = PATIENT_ID
        ds.IssuerOfPatientID = "SEH"
        ds.PatientBirthDate = BIRTH_DATE
        ds.PatientSex = "M"
        ds.PatientAge = "068Y"
        ds.PatientWeight = "81"
        ds.OtherPatientIDsSequence = Sequence([Dataset()])
        ds.OtherPatientIDsSequence[0].PatientID = "OLD-0815"
        ds.OtherPatientIDsSequence[0].TypeOfPatientID = "TEXT"
        ds.BodyPartExamined = "CHEST"
        ds.SliceThickness = "5"
        ds.KVP = "120"
        ds.ProtocolName = "Chest Doe"
        ds.PatientPosition = "FFS"
        ds.StudyID = "4242"
        ds.SeriesNumber = "2"
        ds.AcquisitionNumber = "1"
        ds.InstanceNumber = str(number)
        ds.ImagePositionPatient = [0, 0, -5 * number]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = frame_of_reference
        ds.PositionReferenceIndicator = ""
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [0.7, 0.7]
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RequestAttributesSequence = Sequence([Dataset()])
        request = ds.RequestAttributesSequence[0]
        request.RequestedProcedureID = "RP-77"
        request.ScheduledProcedureStepID = "SPS-77"
        request.AccessionNumber = "ACC-20261127-42"
        request.ReferencedStudySequence = Sequence([Dataset()])
        request.ReferencedStudySequence[0].ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        request.ReferencedStudySequence[0].ReferencedSOPInstanceUID = study
        if slices:
            previous = Dataset()
            previous.ReferencedSOPClassUID = CTImageStorage
            previous.ReferencedSOPInstanceUID = slices[-1].SOPInstanceUID
            ds.ReferencedImageSequence = Sequence([previous])
        ds.private_block(0x0009, SECRET_CREATOR, create=True).add_new(0x01, "LO", PATIENT_NAME)
        ds.private_block(0x0043, SAFE_CREATOR, create=True).add_new(0x39, "IS", [1000, 0, 0, 0])
        ds.PixelData = rng.integers(0, 4096, size * size, dtype=np.uint16).tobytes()
        slices.append(ds)
    return slices


def referencing_sr(images: Seq[Dataset]) -> Dataset:
    """A Comprehensive SR in the images' study: a finding in free text (naming the patient,
    as reports do) and IMAGE items referencing each image."""
    finding = hd.sr.TextContentItem(
        name=codes.DCM.Finding,
        value=f"Nodule unchanged since 2025; {PATIENT_NAME.replace('^', ' ')} informed.",
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    references = [
        hd.sr.ImageContentItem(
            name=codes.DCM.SourceImageForSegmentation,
            referenced_sop_class_uid=image.SOPClassUID,
            referenced_sop_instance_uid=image.SOPInstanceUID,
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
        for image in images
    ]
    root = hd.sr.ContainerContentItem(
        name=codes.DCM.Finding,
        template_id=None,
    )
    root.ContentSequence = hd.sr.ContentSequence([finding, *references])
    sr = hd.sr.ComprehensiveSR(
        evidence=list(images),
        content=root,
        series_instance_uid=generate_uid(),
        series_number=3,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="ACME Reporting",
        institution_name=INSTITUTION,
        is_complete=True,
        is_final=True,
        is_verified=True,
        verifying_observer_name=PHYSICIAN,
        verifying_organization=INSTITUTION,
    )
    return sr
