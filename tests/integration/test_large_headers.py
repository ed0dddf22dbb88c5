"""An enhanced multi-frame object whose header is larger than an event may be is still
accepted: its DICOM JSON goes to the metadata bucket, the event refers to it, and the
catalog serves it as for any instance."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt

from infra.dicom.header import read_header
from infra.dimse.nodelay import set_nodelay
from infra.storage.archive import make_minio
from infra.storage.metadata import encode_metadata
from tests.dicom_factory import new_dataset, part10_bytes
from tests.integration.conftest import Platform, eventually

pytestmark = pytest.mark.integration

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
FRAMES = 2_000
# What the event log takes in one record (EventPublisher's max_request_size).
EVENT_LIMIT = 4 * 1024 * 1024
NOTE = "reconstructed from the helical acquisition, " * 6


def _item(**values: Any) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def enhanced_ct(frames: int, size: int = 16) -> Dataset:
    """An enhanced CT with the per-frame functional groups a scanner writes for each frame."""
    ds = new_dataset(ENHANCED_CT, generate_uid(), generate_uid())
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "ENH-0001", "Enhanced^Test", "CT"
    ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20261201", 1, 1
    ds.Rows = ds.Columns = size
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SharedFunctionalGroupsSequence = Sequence(
        [_item(PixelMeasuresSequence=Sequence([_item(PixelSpacing=[0.5, 0.5], SliceThickness=1)]))]
    )
    per_frame = []
    for n in range(frames):
        per_frame.append(
            _item(
                FrameContentSequence=Sequence(
                    [
                        _item(
                            StackID="1",
                            InStackPositionNumber=n + 1,
                            DimensionIndexValues=[1, n + 1],
                            FrameAcquisitionDateTime=f"20261201120000.{n:06d}",
                            FrameReferenceDateTime=f"20261201120000.{n:06d}",
                            FrameAcquisitionDuration=10.5,
                            FrameComments=f"synthetic frame {n + 1} of {frames}: {NOTE}",
                        )
                    ]
                ),
                PlanePositionSequence=Sequence(
                    [_item(ImagePositionPatient=[-120.25, -130.5, -0.625 * n])]
                ),
                PlaneOrientationSequence=Sequence(
                    [_item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]
                ),
                PixelValueTransformationSequence=Sequence(
                    [_item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")]
                ),
                FrameVOILUTSequence=Sequence(
                    [_item(WindowCenter=[40, 400], WindowWidth=[400, 1800])]
                ),
                CTAcquisitionDetailsSequence=Sequence(
                    [
                        _item(
                            DataCollectionDiameter=500.0,
                            GantryDetectorTilt=0.0,
                            TableHeight=150.5,
                            RotationDirection="CW",
                            RevolutionTime=0.5,
                            SingleCollimationWidth=0.625,
                            TotalCollimationWidth=40.0,
                        )
                    ]
                ),
                CTReconstructionSequence=Sequence(
                    [
                        _item(
                            ReconstructionDiameter=350.0,
                            ConvolutionKernel="STANDARD",
                            ReconstructionAlgorithm="ITERATIVE",
                            ReconstructionAngle=360.0,
                        )
                    ]
                ),
                CTPositionSequence=Sequence(
                    [
                        _item(
                            TablePosition=-0.625 * n,
                            ReconstructionTargetCenterPatient=[0.0, -30.5, -0.625 * n],
                            DataCollectionCenterPatient=[0.0, -30.5, -0.625 * n],
                        )
                    ]
                ),
                FrameAnatomySequence=Sequence(
                    [
                        _item(
                            FrameLaterality="U",
                            AnatomicRegionSequence=Sequence(
                                [
                                    _item(
                                        CodeValue="818981001",
                                        CodingSchemeDesignator="SCT",
                                        CodeMeaning="Abdomen",
                                    )
                                ]
                            ),
                        )
                    ]
                ),
                IrradiationEventIdentificationSequence=Sequence(
                    [_item(IrradiationEventUID=generate_uid())]
                ),
                CTExposureSequence=Sequence(
                    [_item(ExposureTimeInms=500.0, XRayTubeCurrentInmA=250.0, ExposureInmAs=125.0)]
                ),
            )
        )
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = bytes(size * size * 2 * frames)
    return ds


async def test_an_enhanced_ct_of_2000_frames_is_accepted_and_its_header_served(
    platform: Platform,
) -> None:
    ds = enhanced_ct(FRAMES)
    blob = encode_metadata(read_header(part10_bytes(ds), metadata=True).metadata or {})
    assert len(blob) > EVENT_LIMIT, "the header must be larger than an event may be"

    ae = AE(ae_title="ENHANCED")
    ae.add_requested_context(ENHANCED_CT, ExplicitVRLittleEndian)
    assoc = ae.associate(
        *platform.dicom, ae_title="PACS", evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)]
    )
    assert assoc.is_established
    try:
        status = await asyncio.to_thread(assoc.send_c_store, ds)
    finally:
        assoc.release()
    assert status.Status == 0x0000, status

    study, series = ds.StudyInstanceUID, ds.SeriesInstanceUID
    metadata = f"/dicom-web/studies/{study}/series/{series}/metadata"

    def served() -> list[dict[str, Any]] | None:
        response = platform.get(metadata, timeout=60)
        return response.json() if response.status_code == 200 else None

    (instance,) = await eventually(served, timeout=60)
    frames = instance["52009230"]["Value"]
    assert len(frames) == FRAMES
    last = frames[-1]["00209111"]["Value"][0]
    assert last["00209057"]["Value"] == [FRAMES]  # InStackPositionNumber of the last frame
    assert instance["00280008"]["Value"] == [FRAMES]

    # The header lives in the metadata bucket, once, under the study.
    client = make_minio(platform.settings.s3)
    bucket = platform.settings.s3.metadata_bucket
    stored = list(client.list_objects(bucket, prefix=f"{study}/", recursive=True))
    assert [o.size for o in stored] == [len(blob)]
