"""Prefetch of priors on the real platform from Debian's Orthanc: a procedure scheduled on
the worklist pulls the patient's wanted priors (C-GET) before its start, skipping the one
already here and those too old or not wanted, as a workflow found by PatientID and
AccessionNumber; on demand, the same by C-MOVE (Orthanc sends to our gateway) and by
WADO-RS."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid
from temporalio.client import Client

from apps.rules_cache import REFRESH_SECONDS
from schemas.prefetch import PrefetchResult
from tests.dicom_factory import ct_dataset, part10_bytes, write_series
from tests.integration.conftest import Platform, eventually, run
from tests.orthanc import Orthanc
from tests.ports import free_port

pytestmark = pytest.mark.integration


def study(patient: str, when: str, modality: str, count: int) -> list[pydicom.Dataset]:
    uid, series = generate_uid(), generate_uid()
    out = []
    for number in range(1, count + 1):
        ds = ct_dataset(uid, series, number, size=32, patient_id=patient)
        ds.StudyDate, ds.Modality = when, modality
        out.append(ds)
    return out


@pytest.fixture
def source(tmp_path: Path, platform: Platform) -> Iterator[Orthanc]:
    host, port = platform.dicom
    us = (platform.settings.dicom.ae_title, host, port)
    orthanc = Orthanc(
        tmp_path, free_port(), free_port(), aet="PRIORS", dicomweb=True, modalities={"pacs": us}
    )
    orthanc.start()
    try:
        yield orthanc
    finally:
        orthanc.stop()


def upload(orthanc: Orthanc, datasets: list[pydicom.Dataset]) -> None:
    with httpx.Client(base_url=orthanc.url, timeout=30) as client:
        for ds in datasets:
            assert client.post("/instances", content=part10_bytes(ds)).status_code == 200


def local_studies(platform: Platform, patient: str) -> dict[str, int]:
    """Study UID -> instances stored here, for the patient."""
    found = platform.get(
        "/dicom-web/studies",
        params={"PatientID": patient, "includefield": "NumberOfStudyRelatedInstances"},
    )
    assert found.status_code in (200, 204), found.text
    items: list[dict[str, Any]] = found.json() if found.status_code == 200 else []
    return {i["0020000D"]["Value"][0]: int(i["00201208"]["Value"][0]) for i in items}


def register(platform: Platform, orthanc: Orthanc) -> None:
    node = {"ae_title": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port,
            "dicomweb_url": f"{orthanc.url}/dicom-web"}  # fmt: skip
    assert platform.client().put("/api/nodes/prior-src", json=node).status_code == 200


def completed_events(platform: Platform) -> list[dict[str, Any]]:
    params = {"type": "pacs.prefetch.completed", "limit": 1000}
    events: list[dict[str, Any]] = platform.get("/api/audit/events", params=params).json()
    return events


async def test_a_scheduled_procedure_prefetches_the_wanted_priors(
    platform: Platform, source: Orthanc, tmp_path: Path, dcmtk: None, temporal_client: Client
) -> None:
    patient = "PRIOR-WL-1"
    newest = study(patient, "20260601", "CT", 3)
    older = study(patient, "20240115", "CT", 2)
    here = study(patient, "20230301", "CT", 2)  # also stored here already: skipped
    mr = study(patient, "20250101", "MR", 2)  # not a wanted modality
    ancient = study(patient, "20100101", "CT", 1)  # outside the lookback
    upload(source, newest + older + here + mr + ancient)
    folder = tmp_path / "here"
    write_series(folder, iter(here))
    host, port = platform.dicom
    sent = run(["storescu", "-aec", "PACS", "+sd", host, str(port), str(folder)])
    assert sent.returncode == 0, sent.stderr
    await eventually(lambda: local_studies(platform, patient) == {here[0].StudyInstanceUID: 2}, 30)

    register(platform, source)
    rule = {"match": {"Modality": "CT"}, "sources": ["prior-src"], "via": "c-get",
            "modalities": ["CT"], "lookback_days": 3650, "max_studies": 3}  # fmt: skip
    saved = platform.client().put("/api/prefetch/rules/ct-priors", json=rule)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 1
    await asyncio.sleep(REFRESH_SECONDS + 0.5)
    try:
        start = datetime.now(UTC) + timedelta(minutes=10)
        item = {
            "patient_name": "Prior^Patient",
            "patient_id": patient,
            "accession_number": "ACC-PRIOR-1",
            "scheduled_step": {
                "step_id": "SPS-PRIOR-1",
                "station_ae_title": "CT1",
                "modality": "CT",
                "start_date": start.astimezone().date().isoformat(),
                "start_time": start.astimezone().time().replace(microsecond=0).isoformat(),
            },
        }
        scheduled = platform.post("/api/worklist", json=item)
        assert scheduled.status_code == 201, scheduled.text

        expected = {
            newest[0].StudyInstanceUID: 3,
            older[0].StudyInstanceUID: 2,
            here[0].StudyInstanceUID: 2,
        }
        await eventually(lambda: local_studies(platform, patient) == expected, 90)
        assert datetime.now(UTC) < start  # before the patient arrives

        # Visible as a workflow, found by PatientID and by AccessionNumber.
        def job() -> dict[str, Any] | None:
            params = {"type": "PrefetchWorkflow", "AccessionNumber": "ACC-PRIOR-1"}
            jobs: list[dict[str, Any]] = platform.get("/api/jobs", params=params).json()["jobs"]
            return jobs[0] if jobs and jobs[0]["status"] == "Completed" else None

        found = await eventually(job, 60)
        assert found["keys"]["PatientID"] == patient
        by_patient = platform.get(
            "/api/jobs", params={"type": "PrefetchWorkflow", "PatientID": patient}
        )
        assert [j["workflow_id"] for j in by_patient.json()["jobs"]] == [found["workflow_id"]]

        def event() -> dict[str, Any] | None:
            mine = [
                e
                for e in completed_events(platform)
                if e["sop_instance_uid"] == found["workflow_id"]
            ]
            return mine[0] if mine else None

        await eventually(event, 30)  # the pacs.prefetch.completed event, in the audit trail
        handle = temporal_client.get_workflow_handle(
            found["workflow_id"], result_type=PrefetchResult
        )
        result = await handle.result()
        decided = {d.study.study_instance_uid: d.decision for d in result.decisions}
        assert decided == {
            newest[0].StudyInstanceUID: "pull",
            older[0].StudyInstanceUID: "pull",
            here[0].StudyInstanceUID: "complete here",
            mr[0].StudyInstanceUID: "not wanted",
        }  # the ancient one is not even listed: the C-FIND asks within the lookback only
        assert sorted(p.study_instance_uid for p in result.pulled) == sorted(
            [newest[0].StudyInstanceUID, older[0].StudyInstanceUID]
        )
        assert result.failed == [] and result.late is False
        # What came is what the source holds, pixel for pixel.
        sop = newest[1]
        path = (
            f"/dicom-web/studies/{sop.StudyInstanceUID}/series/{sop.SeriesInstanceUID}"
            f"/instances/{sop.SOPInstanceUID}"
        )
        raw = platform.get(path, headers={"Accept": "application/dicom"})
        assert raw.status_code == 200
        assert (
            pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw.content)).PixelData == sop.PixelData
        )
    finally:
        platform.client().delete("/api/prefetch/rules/ct-priors")


@pytest.mark.parametrize("via", ["c-move", "wado"])
async def test_prefetch_on_demand(platform: Platform, source: Orthanc, via: str) -> None:
    patient = f"PRIOR-DEMAND-{via}"
    priors = study(patient, "20260101", "CT", 2)
    upload(source, priors)
    register(platform, source)
    body = {"patient_id": patient, "accession_number": f"ACC-{via}", "sources": ["prior-src"],
            "via": via}  # fmt: skip
    first = platform.post("/api/prefetch", json=body)
    assert first.status_code == 202, first.text
    again = platform.post("/api/prefetch", json=body)
    assert again.json()["workflow_id"] == first.json()["workflow_id"]
    await eventually(
        lambda: local_studies(platform, patient) == {priors[0].StudyInstanceUID: 2}, 90
    )
    status = platform.get(first.json()["status_url"]).json()
    assert status["type"] == "PrefetchWorkflow"

    unknown = platform.post("/api/prefetch", json=body | {"sources": ["nobody"]})
    assert unknown.status_code == 422 and "not a registered node" in unknown.text
