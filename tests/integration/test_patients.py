"""Patient corrections and merges on the real platform: a name corrected through REST shows
in QIDO, C-FIND (DCMTK findscu) and in the objects WADO-RS and C-GET (getscu) send, their
pixel data as stored; a merge moves every study of one patient to another, with its
demographics, at every level; an instance of a corrected study received later (with the
old header) is listed corrected too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.dicom_factory import ct_series
from tests.integration.conftest import Platform, eventually, run
from tests.integration.test_deletion import send

pytestmark = pytest.mark.integration


def named(images: list[pydicom.Dataset], name: str, birth: str = "", sex: str = "") -> None:
    for ds in images:
        ds.PatientName, ds.PatientBirthDate, ds.PatientSex = name, birth, sex


def qido_studies(platform: Platform, patient_id: str) -> dict[str, dict[str, Any]]:
    found = platform.get(
        "/dicom-web/studies",
        params={"PatientID": patient_id, "includefield": "PatientBirthDate,PatientSex"},
    )
    assert found.status_code in (200, 204), found.text
    rows = found.json() if found.status_code == 200 else []
    return {r["0020000D"]["Value"][0]: r for r in rows}


def name_of(row: dict[str, Any]) -> str:
    return str(row["00100010"]["Value"][0]["Alphabetic"])


def cfind(platform: Platform, tmp: Path, level: str, **keys: str) -> list[pydicom.Dataset]:
    host, port = platform.dicom
    tmp.mkdir(parents=True, exist_ok=True)
    args = ["-k", f"QueryRetrieveLevel={level}"]
    for key, value in keys.items():
        args += ["-k", f"{key}={value}"]
    model = "-P" if level == "PATIENT" else "-S"
    found = run(["findscu", model, "-X", "-od", str(tmp), "-aet", "FIXER", "-aec", "PACS",
                 *args, host, str(port)])  # fmt: skip
    assert found.returncode == 0, found.stderr
    answers = [pydicom.dcmread(p) for p in sorted(tmp.glob("*"))]
    for path in tmp.glob("*"):
        path.unlink()
    return answers


def retrieved(platform: Platform, study: str, tmp: Path) -> list[pydicom.Dataset]:
    host, port = platform.dicom
    tmp.mkdir(parents=True, exist_ok=True)
    got = run(["getscu", "-S", "-aet", "FIXGET", "-aec", "PACS", "-od", str(tmp),
               "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
               host, str(port)])  # fmt: skip
    assert got.returncode == 0, got.stderr
    return [pydicom.dcmread(p) for p in tmp.iterdir()]


def wado(platform: Platform, ds: pydicom.Dataset) -> pydicom.Dataset:
    url = (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")  # fmt: skip
    answer = platform.get(url, headers={"Accept": "application/dicom"})
    assert answer.status_code == 200, answer.text
    return pydicom.dcmread(pydicom.filebase.DicomBytesIO(answer.content))


async def test_a_corrected_name_and_a_merge_show_everywhere(
    platform: Platform, tmp_path: Path, dcmtk: None
) -> None:
    first = list(ct_series(2, size=16, patient_id="FIX-A"))
    second = list(ct_series(1, size=16, patient_id="FIX-A"))
    target = list(ct_series(1, size=16, patient_id="FIX-B"))
    named(first + second, "WRONG^NAME", "19800101", "M")
    named(target, "TARGET^PATIENT", "19700202", "F")
    send(platform, tmp_path / "in", first + second + target)
    await eventually(lambda: len(qido_studies(platform, "FIX-A")) == 2, 60)
    await eventually(lambda: len(qido_studies(platform, "FIX-B")) == 1, 60)
    client = platform.client()

    assert client.patch("/api/patients/FIX-A", json={}).status_code == 422
    assert client.patch("/api/patients/NOBODY", json={"PatientName": "X"}).status_code == 404
    fixed = client.patch(
        "/api/patients/FIX-A", json={"PatientName": "RIGHT^NAME", "reason": "typo at the desk"}
    )
    assert fixed.status_code == 200, fixed.text
    assert sorted(fixed.json()["studies"]) == sorted(
        {str(first[0].StudyInstanceUID), str(second[0].StudyInstanceUID)}
    )
    # When the answer comes: QIDO, C-FIND, and the objects sent.
    assert {name_of(r) for r in qido_studies(platform, "FIX-A").values()} == {"RIGHT^NAME"}
    found = cfind(
        platform, tmp_path / "find", "STUDY", PatientName="RIGHT^NAME", StudyInstanceUID=""
    )
    assert {str(d.StudyInstanceUID) for d in found} == set(fixed.json()["studies"])
    assert cfind(platform, tmp_path / "find", "STUDY", PatientName="WRONG^NAME") == []
    sent = wado(platform, first[0])
    assert sent.PatientName == "RIGHT^NAME" and sent.PatientBirthDate == "19800101"
    assert sent.PixelData == first[0].PixelData
    got = retrieved(platform, str(first[0].StudyInstanceUID), tmp_path / "get1")
    assert sorted(str(d.PatientName) for d in got) == ["RIGHT^NAME", "RIGHT^NAME"]
    assert {d.PixelData for d in got} == {ds.PixelData for ds in first}

    # Merge FIX-A into FIX-B: its studies take FIX-B's identity and demographics.
    merge = {"source_patient_id": "FIX-A", "target_patient_id": "FIX-B", "reason": "duplicate"}
    merged = client.post("/api/patients/merge", json=merge)
    assert merged.status_code == 200, merged.text
    assert merged.json()["changes"]["PatientName"] == "TARGET^PATIENT"
    assert qido_studies(platform, "FIX-A") == {}
    studies = qido_studies(platform, "FIX-B")
    assert len(studies) == 3
    assert {name_of(r) for r in studies.values()} == {"TARGET^PATIENT"}
    assert {r["00100030"]["Value"][0] for r in studies.values()} == {"19700202"}
    assert cfind(platform, tmp_path / "find", "PATIENT", PatientID="FIX-A") == []
    [patient] = cfind(
        platform, tmp_path / "find", "PATIENT",
        PatientID="FIX-B", PatientName="", NumberOfPatientRelatedStudies="",
    )  # fmt: skip
    assert patient.NumberOfPatientRelatedStudies == 3 and patient.PatientName == "TARGET^PATIENT"
    got = retrieved(platform, str(second[0].StudyInstanceUID), tmp_path / "get2")
    assert [(d.PatientID, d.PatientName, d.PatientSex) for d in got] == [
        ("FIX-B", "TARGET^PATIENT", "F")
    ]
    metadata = platform.get(f"/dicom-web/studies/{first[0].StudyInstanceUID}/metadata").json()
    assert {m["00100020"]["Value"][0] for m in metadata} == {"FIX-B"}
    assert client.post("/api/patients/merge", json=merge).status_code == 404  # nothing left

    # The modality sends one more image of the first study, with its old header: it is
    # listed under the merged patient, like the rest of its study.
    late = list(ct_series(1, size=16, study_uid=str(first[0].StudyInstanceUID), patient_id="FIX-A"))
    named(late, "WRONG^NAME", "19800101", "M")
    send(platform, tmp_path / "late", late)

    def listed_late() -> bool:
        rows = platform.get(
            f"/dicom-web/studies/{first[0].StudyInstanceUID}/instances",
            params={"includefield": "PatientID,PatientName"},
        ).json()
        return len(rows) == 3 and {r["00100020"]["Value"][0] for r in rows} == {"FIX-B"}

    await eventually(listed_late, 60)
    assert qido_studies(platform, "FIX-A") == {}
    assert wado(platform, late[0]).PatientID == "FIX-B"
    events = platform.audit(str(first[0].StudyInstanceUID), "pacs.study.patient-updated")
    assert len(events) == 2  # the correction and the merge
