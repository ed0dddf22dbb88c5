"""Who saw this patient's images, when, from where: after QIDO and WADO by two users and a
C-FIND and a C-GET by two AEs, the audit API lists each with who, study and outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from tests.dicom_factory import ct_series, write_series
from tests.integration.conftest import Platform, eventually, run
from tests.login import login

pytestmark = pytest.mark.integration

PATIENT = "AUDIT-0001"


def accesses(platform: Platform, **params: Any) -> list[dict[str, Any]]:
    response = platform.get("/api/audit/access", params={"limit": 1000, **params})
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def read_as(platform: Platform, auth: dict[str, str], study: str, series: str, sop: str) -> None:
    """What a radiologist's viewer does: search, fetch an instance, miss a series."""
    with httpx.Client(base_url=platform.http, headers=auth, timeout=30) as client:
        assert client.get("/dicom-web/studies", params={"PatientID": PATIENT}).status_code == 200
        instance = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
        assert client.get(instance, headers={"Accept": "application/dicom"}).status_code == 200
        assert client.get(f"/dicom-web/studies/{study}/series/1.2.3").status_code == 404
        assert client.get("/api/audit/access").status_code == 403  # auditors and admins only


async def test_every_read_is_in_the_audit_trail(
    platform: Platform, dcmtk: None, tmp_path: Path
) -> None:
    files = write_series(tmp_path / "ct", ct_series(3, size=16, patient_id=PATIENT))
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    study, series, sop = first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID
    host, port = platform.dicom
    stored = run(["storescu", "-aet", "AUDITCT", "-aec", "PACS", host, str(port), *map(str, files)])
    assert stored.returncode == 0, stored.stderr

    def listed() -> bool:
        found = platform.get("/dicom-web/studies", params={"StudyInstanceUID": study})
        return found.status_code == 200 and len(found.json()) == 1

    await eventually(listed, timeout=30)
    with platform.client() as admin:
        made = admin.put(
            "/api/users/dr.audit",
            json={"password": "a radiologist's password", "roles": ["radiologist"]},
        )
        assert made.status_code == 200, made.text
        assert admin.get(f"/dicom-web/studies/{study}/metadata").status_code == 200
    rad = login(platform.http, "dr.audit", "a radiologist's password")
    read_as(platform, rad, study, series, sop)
    key = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    found = run(["findscu", "-S", "-aet", "FINDER1", "-aec", "PACS", *key, host, str(port)])
    assert found.returncode == 0, found.stderr
    got = run(["getscu", "-S", "-aet", "GETTER2", "-aec", "PACS", "-od", str(tmp_path),
               *key, host, str(port)])  # fmt: skip
    assert got.returncode == 0, got.stderr

    expected = {
        ("wado-metadata", "admin", "success"),
        ("qido", "dr.audit", "success"),
        ("wado", "dr.audit", "success"),
        ("wado", "dr.audit", "failure"),  # the series that does not exist
        ("c-find", "FINDER1", "success"),
        ("c-get", "GETTER2", "success"),
    }

    def all_recorded() -> bool:
        seen = {
            (e["action"], e["actor"], e["outcome"])
            for e in accesses(platform, StudyInstanceUID=study)
        }
        return expected <= seen

    await eventually(all_recorded, timeout=30)
    entries = accesses(platform, StudyInstanceUID=study)
    for entry in entries:
        assert entry["address"] == "127.0.0.1"
    qido = next(e for e in entries if e["action"] == "qido")
    assert qido["patient_id"] == PATIENT and f"PatientID={PATIENT}" in qido["detail"]
    dimse = next(e for e in entries if e["action"] == "c-get")
    assert dimse["via"] == "dimse" and dimse["calling_ae"] == "GETTER2"
    assert dimse["series_instance_uid"] == series and "3 instance(s)" in dimse["detail"]

    # By patient: the WADO that named only UIDs is found through the catalog.
    by_patient = {(e["action"], e["actor"]) for e in accesses(platform, PatientID=PATIENT)}
    assert {("wado", "dr.audit"), ("c-get", "GETTER2"), ("qido", "dr.audit")} <= by_patient
    by_user = accesses(platform, actor="dr.audit", outcome="failure")
    assert [e["action"] for e in by_user if e["study_instance_uid"] == study] == ["wado"]
    logins = accesses(platform, action="login", actor="dr.audit")
    assert logins and logins[0]["outcome"] == "success"
    denied = accesses(platform, action="denied", actor="dr.audit")
    assert any("/api/audit/access" in e["detail"] for e in denied)


async def test_worklist_reads_are_audited(platform: Platform, dcmtk: None, tmp_path: Path) -> None:
    """MWL C-FIND by a modality and GET /api/worklist by a technologist name the patient;
    the gateway's own read of /api/worklist (a service) is not a second entry."""
    body = {
        "patient_name": "Audit^Wendy",
        "patient_id": "AUDIT-MWL-1",
        "accession_number": "ACC-AUDIT-1",
        "scheduled_step": {
            "step_id": "SPS-AUDIT-1",
            "station_ae_title": "MWLCT",
            "modality": "CT",
            "start_date": "2026-12-01",
            "start_time": "09:30:00",
        },
    }
    scheduled = platform.post("/api/worklist", json=body)
    assert scheduled.status_code == 201, scheduled.text
    study = scheduled.json()["study_instance_uid"]
    host, port = platform.dicom
    found = run(
        ["findscu", "-W", "-aec", "PACS", "-aet", "MWLCT", "-k", "PatientID=AUDIT-MWL-1",
         "-k", "PatientName", "-k", "StudyInstanceUID", host, str(port)]
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    saved = platform.client().put(
        "/api/users/tech.audit",
        json={"password": "a technologist's pass", "roles": ["technologist"]},
    )
    assert saved.status_code == 200
    tech = login(platform.http, "tech.audit", "a technologist's pass")
    listed = httpx.get(
        f"{platform.http}/api/worklist", params={"patient_id": "AUDIT-MWL-1"}, headers=tech
    )
    assert listed.status_code == 200 and len(listed.json()) == 1

    def both() -> list[dict[str, Any]] | None:
        entries = accesses(platform, PatientID="AUDIT-MWL-1")
        actions = {(e["action"], e["actor"]) for e in entries}
        return entries if {("mwl-find", "MWLCT"), ("worklist", "tech.audit")} <= actions else None

    entries = await eventually(both, timeout=30)
    assert all(e["study_instance_uid"] == study for e in entries)
    assert not [e for e in entries if e["actor"].startswith("service:")]
