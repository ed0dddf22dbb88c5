"""C-FIND (Patient Root and Study Root, every level) against DCMTK findscu and pynetdicom."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)

from tests.dicom_factory import ct_series
from tests.integration.catalog_data import CatalogFixture, stored
from tests.integration.conftest import Platform, eventually, run
from tests.integration.dimse_client import send_all

pytestmark = pytest.mark.integration
__all__ = ["stored"]  # the module-scoped fixture


def findscu(platform: Platform, tmp_path: Path, model: str, keys: dict[str, str]) -> list[Dataset]:
    """Run DCMTK findscu; every response identifier is written to a file and read back."""
    out = tmp_path / f"find-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    host, port = platform.dicom
    argv = ["findscu", model, "-aec", "PACS", "-X", "-od", str(out), host, str(port)]
    for key, value in keys.items():
        argv += ["-k", f"{key}={value}" if value else key]
    result = run(argv)
    assert result.returncode == 0, result.stderr
    return [dcmread(path) for path in sorted(out.iterdir())]


def uids(responses: list[Dataset], keyword: str) -> set[str]:
    return {str(ds.get(keyword)) for ds in responses}


def test_study_root_every_level(
    platform: Platform, stored: CatalogFixture, tmp_path: Path, dcmtk: Any
) -> None:
    alice, bob = stored.alice[0], stored.bob[0]
    studies = findscu(
        platform, tmp_path, "-S",
        {"QueryRetrieveLevel": "STUDY", "PatientID": alice.PatientID, "StudyInstanceUID": "",
         "NumberOfStudyRelatedInstances": "", "ModalitiesInStudy": "", "PatientName": ""},
    )  # fmt: skip
    assert len(studies) == 1
    (study,) = studies
    assert study.StudyInstanceUID == alice.StudyInstanceUID
    assert study.NumberOfStudyRelatedInstances == 5
    assert list(study.ModalitiesInStudy) == ["CT", "MR"]
    assert str(study.PatientName) == f"ALICE^{stored.token}"

    series = findscu(
        platform, tmp_path, "-S",
        {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": alice.StudyInstanceUID,
         "SeriesInstanceUID": "", "Modality": "", "NumberOfSeriesRelatedInstances": ""},
    )  # fmt: skip
    assert sorted(str(s.Modality) for s in series) == ["CT", "MR"]
    assert {s.Modality: int(s.NumberOfSeriesRelatedInstances) for s in series} == {
        "CT": 3,
        "MR": 2,
    }

    images = findscu(
        platform, tmp_path, "-S",
        {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": alice.StudyInstanceUID,
         "SeriesInstanceUID": alice.SeriesInstanceUID, "SOPInstanceUID": "",
         "InstanceNumber": ""},
    )  # fmt: skip
    assert uids(images, "SOPInstanceUID") == {ds.SOPInstanceUID for ds in stored.alice[:3]}
    # Return keys only: nothing that was not asked for comes back.
    assert "Rows" not in images[0]
    assert "PatientID" not in images[0]

    both = findscu(
        platform, tmp_path, "-S",
        {"QueryRetrieveLevel": "STUDY",
         "StudyInstanceUID": f"{alice.StudyInstanceUID}\\{bob.StudyInstanceUID}"},
    )  # fmt: skip
    assert uids(both, "StudyInstanceUID") == {alice.StudyInstanceUID, bob.StudyInstanceUID}

    ranged = findscu(
        platform, tmp_path, "-S",
        {"QueryRetrieveLevel": "STUDY", "PatientID": f"*{stored.token}",
         "StudyDate": "20250201-20251231", "StudyInstanceUID": ""},
    )  # fmt: skip
    assert uids(ranged, "StudyInstanceUID") == {bob.StudyInstanceUID}


def test_patient_root_every_level(
    platform: Platform, stored: CatalogFixture, tmp_path: Path, dcmtk: Any
) -> None:
    alice, bob = stored.alice[0], stored.bob[0]
    patients = findscu(
        platform, tmp_path, "-P",
        {"QueryRetrieveLevel": "PATIENT", "PatientName": f"*^{stored.token.lower()}",
         "PatientID": "", "NumberOfPatientRelatedStudies": "",
         "NumberOfPatientRelatedInstances": ""},
    )  # fmt: skip
    assert uids(patients, "PatientID") == {alice.PatientID, bob.PatientID}
    counts = {p.PatientID: int(p.NumberOfPatientRelatedInstances) for p in patients}
    assert counts == {alice.PatientID: 5, bob.PatientID: 2}

    studies = findscu(
        platform, tmp_path, "-P",
        {"QueryRetrieveLevel": "STUDY", "PatientID": bob.PatientID, "StudyInstanceUID": ""},
    )  # fmt: skip
    assert uids(studies, "StudyInstanceUID") == {bob.StudyInstanceUID}

    series = findscu(
        platform, tmp_path, "-P",
        {"QueryRetrieveLevel": "SERIES", "PatientID": bob.PatientID,
         "StudyInstanceUID": bob.StudyInstanceUID, "SeriesInstanceUID": ""},
    )  # fmt: skip
    assert uids(series, "SeriesInstanceUID") == {bob.SeriesInstanceUID}

    images = findscu(
        platform, tmp_path, "-P",
        {"QueryRetrieveLevel": "IMAGE", "PatientID": bob.PatientID,
         "StudyInstanceUID": bob.StudyInstanceUID, "SeriesInstanceUID": bob.SeriesInstanceUID,
         "SOPInstanceUID": ""},
    )  # fmt: skip
    assert uids(images, "SOPInstanceUID") == {ds.SOPInstanceUID for ds in stored.bob}


def _find(platform: Platform, identifier: Dataset, cancel_after: int | None = None) -> Any:
    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(*platform.dicom, ae_title="PACS")
    assert assoc.is_established
    try:
        responses = []
        message_id = 7
        for status, found in assoc.send_c_find(
            identifier, StudyRootQueryRetrieveInformationModelFind, msg_id=message_id
        ):
            responses.append((int(status.Status), found))
            if cancel_after is not None and len(responses) == cancel_after:
                assoc.send_c_cancel(
                    message_id, query_model=StudyRootQueryRetrieveInformationModelFind
                )
        return responses
    finally:
        assoc.release()


CANCEL_MATCHES = 1_000


async def test_pynetdicom_find_cancel_and_bad_level(
    platform: Platform, stored: CatalogFixture
) -> None:
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.PatientID = f"*{stored.token}"
    query.SOPInstanceUID = ""
    responses = _find(platform, query)
    assert [s for s, _ in responses[:-1]] == [0xFF00] * len(stored.all)
    assert responses[-1][0] == 0x0000

    # Enough matches that the SCP is still sending when the C-CANCEL arrives: at well under
    # a millisecond a response, 150 were all sent before a busy client's cancel (seen in CI).
    many = list(ct_series(CANCEL_MATCHES, size=8, patient_id=f"CANCEL-{stored.token}"))
    assert send_all(platform.dicom, many, [], threading.Lock()) == []
    query.PatientID = f"CANCEL-{stored.token}"
    everything = await eventually(
        lambda: len(_find(platform, query)) == CANCEL_MATCHES + 1, timeout=60
    )
    assert everything
    cancelled = _find(platform, query, cancel_after=1)
    assert cancelled[-1][0] == 0xFE00
    assert len(cancelled) < CANCEL_MATCHES + 1

    wrong = Dataset()
    wrong.QueryRetrieveLevel = "PATIENT"  # not a Study Root level
    wrong.PatientID = ""
    ((status, _),) = _find(platform, wrong)
    assert status == 0xA900

    bad_date = Dataset()
    bad_date.QueryRetrieveLevel = "STUDY"
    bad_date.StudyDate = "2025"
    ((status, _),) = _find(platform, bad_date)
    assert status == 0xA900
