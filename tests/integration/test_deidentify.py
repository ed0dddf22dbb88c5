"""Acceptance 5 of issue 12: a de-identified copy of a CT and an SR study, made by the
DeidentificationWorkflow on the real platform, stored back as a new study and as a zip."""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from temporalio.client import WorkflowExecutionStatus

from infra.multipart import build_multipart
from schemas.deidentify import DeidentifyOptions
from tests import deid_factory as phi
from tests.deid_scan import elements, kept_values, text_of
from tests.dicom_factory import part10_bytes
from tests.integration.conftest import Platform, eventually
from tests.login import login
from workflows.deidentify import STUDY_UID

pytestmark = pytest.mark.integration

OPTIONS = DeidentifyOptions(clean_descriptors=True)
IDENTIFYING = [
    *(phi.PATIENT_ID, "Doe", "Jonathan", phi.INSTITUTION, "House", "Carla", phi.STATION),
    *(phi.SERIAL, "OLD-0815", "ACC-20261127-42", phi.BIRTH_DATE, "RP-77"),
]


def stow(platform: Platform, bodies: list[bytes]) -> None:
    body, boundary = build_multipart(("application/dicom", b) for b in bodies)
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    answer = platform.post(
        "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert answer.status_code == 200, answer.text


def dciodvfy_errors(ds: Dataset, path: Path) -> set[str]:
    """dciodvfy's errors, values masked: the same fault on a changed value is one fault."""
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return {re.sub(r"<[^>]*>", "<>", line) for line in lines if line.startswith("Error")}


def wait_done(platform: Platform, auth: dict[str, str], job: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        answer = httpx.get(f"{platform.http}/api/deidentify/{job}", headers=auth, timeout=30)
        assert answer.status_code == 200, answer.text
        status: dict[str, Any] = answer.json()
        assert status["state"] != "failed", status
        return status if status["state"] == "completed" else None

    return done


def start(platform: Platform, auth: dict[str, str], study: str, target: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{platform.http}/api/deidentify",
        json={"study_instance_uid": study, "options": OPTIONS.model_dump(), "target": target},
        headers=auth,
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    accepted: dict[str, Any] = answer.json()
    return accepted


async def test_a_deidentified_copy_of_a_ct_and_an_sr_study(
    platform: Platform, temporal_client: Any, tmp_path: Path
) -> None:
    cts = phi.identified_ct_series(4, size=64)
    sr = phi.referencing_sr(cts)
    originals = {ds.SOPInstanceUID: ds for ds in [*cts, sr]}
    study = cts[0].StudyInstanceUID
    stow(platform, [part10_bytes(ds) for ds in originals.values()])
    with platform.client() as admin:
        for user, role in (("dr.deid", "radiologist"), ("res.deid", "researcher")):
            body = {"password": f"{user} password!", "roles": [role]}
            made = admin.put(f"/api/users/{user}", json=body)
            assert made.status_code == 200, made.text
    radiologist = login(platform.http, "dr.deid", "dr.deid password!")
    researcher = login(platform.http, "res.deid", "res.deid password!")

    refused = httpx.post(
        f"{platform.http}/api/deidentify",
        json={"study_instance_uid": study, "target": "archive"},
        headers=researcher,
    )
    assert refused.status_code == 403  # a researcher reads results, does not start jobs
    missing = httpx.post(
        f"{platform.http}/api/deidentify",
        json={"study_instance_uid": "1.2.3.4", "target": "archive"},
        headers=radiologist,
    )
    assert missing.status_code == 404 and "no stored study" in missing.json()["detail"]

    job = await eventually(lambda: start(platform, radiologist, study, "archive"), timeout=30)
    status = await eventually(wait_done(platform, researcher, job["job_id"]), timeout=180)
    copy_study = status["study_instance_uid"]
    assert copy_study != study and status["instance_count"] == 5

    # The job is a workflow in Temporal, found by the source study.
    described = await temporal_client.get_workflow_handle(job["workflow_id"]).describe()
    assert described.workflow_type == "DeidentificationWorkflow"
    assert described.status == WorkflowExecutionStatus.COMPLETED
    assert described.typed_search_attributes[STUDY_UID] == study

    # The re-identification map: admin only.
    map_path = f"/api/deidentify/{job['job_id']}/map"
    for who in (radiologist, researcher):
        assert httpx.get(f"{platform.http}{map_path}", headers=who).status_code == 403
    reid = platform.get(map_path).json()
    assert reid["patient_id"]["original"] == phi.PATIENT_ID
    assert reid["study_instance_uid"] == {"original": study, "deidentified": copy_study}
    new_of = {m["sop_instance_uid"]["original"]: m["sop_instance_uid"]["deidentified"]
              for m in reid["instances"]}  # fmt: skip
    assert set(new_of) == set(originals)

    # The copy is a new study, stored through the ingest path like any other.
    client = DICOMwebClient(url=f"{platform.http}/dicom-web", headers=platform.auth)
    await eventually(lambda: len(client.search_for_instances(copy_study)) == 5, timeout=60)
    copies = {ds.SOPInstanceUID: ds for ds in client.retrieve_study(copy_study)}
    assert set(copies) == set(new_of.values())
    copy_sops = set(copies)

    for sop, original in originals.items():
        copy = copies[new_of[sop]]
        # Nothing the profile removes or replaces keeps its value, at any depth.
        assert kept_values(original, copy, OPTIONS) == []
        everything = text_of(copy)
        for value in IDENTIFYING:
            assert value not in everything, value
        assert copy.PatientID == reid["patient_id"]["deidentified"]
        assert not [e for _, e in elements(copy) if e.tag.is_private and int(e.tag) >> 16 == 0x0009]  # type: ignore[attr-defined]
        # dciodvfy finds nothing wrong with the copy that was not wrong with the original.
        before = dciodvfy_errors(original, tmp_path / f"{sop}.dcm")
        after = dciodvfy_errors(copy, tmp_path / f"{sop}-copy.dcm")
        assert after <= before, after - before
        if "PixelData" in original:
            assert copy.PixelData == original.PixelData
        # Every reference resolves inside the copy.
        for _, elem in elements(copy):
            if int(elem.tag) == 0x00081155:  # type: ignore[attr-defined]
                assert elem.value in copy_sops | {copy_study}, elem  # type: ignore[attr-defined]
    ct_copies = [c for c in copies.values() if c.Modality == "CT"]
    assert len({c.FrameOfReferenceUID for c in ct_copies}) == 1
    sr_copy = next(c for c in copies.values() if c.Modality == "SR")
    image_refs = {
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for item in sr_copy.ContentSequence
        if item.ValueType == "IMAGE"
    }
    assert image_refs == {c.SOPInstanceUID for c in ct_copies}
    # The original study is still there, untouched.
    assert len(client.search_for_instances(study)) == 5

    # The same study as a zip: the same UIDs (same key, same options), for a researcher.
    zipped = start(platform, radiologist, study, "zip")
    done = await eventually(wait_done(platform, researcher, zipped["job_id"]), timeout=180)
    download = httpx.get(f"{platform.http}{done['zip_url']}", headers=researcher, timeout=60)
    assert download.status_code == 200
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        members = [pydicom.dcmread(io.BytesIO(archive.read(n))) for n in archive.namelist()]
    assert {m.SOPInstanceUID for m in members} == copy_sops

    # And the audit trail says who asked.
    def audited() -> bool:
        rows = platform.get("/api/audit/access", params={"action": "de-identify"}).json()["entries"]
        return sum(r["actor"] == "dr.deid" and r["study_instance_uid"] == study for r in rows) == 2

    await eventually(audited, timeout=30)
    announced = platform.audit(study, "pacs.study.deidentified")
    assert {row["sop_instance_uid"] for row in announced} == {job["job_id"], zipped["job_id"]}


async def test_a_copy_to_a_registered_node_and_a_job_refused_for_burned_in_text(
    platform: Platform, tmp_path: Path
) -> None:
    cts = phi.identified_ct_series(2, size=32, seed=7)
    sr = phi.referencing_sr(cts)
    burned = phi.identified_ct_series(1, size=16, seed=9)[0]
    burned.BurnedInAnnotation = "YES"
    stow(platform, [part10_bytes(ds) for ds in (*cts, sr, burned)])
    port = platform.settings.dicom.port + 7
    node = {"ae_title": "DEIDSCP", "host": "127.0.0.1", "port": port, "services": ["echo"]}
    with platform.client() as admin:
        assert admin.put("/api/nodes/research-archive", json=node).status_code == 200
        unknown = admin.post(
            "/api/deidentify",
            json={"study_instance_uid": cts[0].StudyInstanceUID, "target": "nowhere"},
        )
        assert unknown.status_code == 404 and "no node nowhere" in unknown.json()["detail"]
    out = tmp_path / "received"
    out.mkdir()
    storescp = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for in finally
        ["storescp", "-aet", "DEIDSCP", "-od", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        job = await eventually(
            lambda: start(platform, platform.auth, cts[0].StudyInstanceUID, "research-archive"),
            timeout=30,
        )
        status = await eventually(wait_done(platform, platform.auth, job["job_id"]), timeout=180)
    finally:
        storescp.terminate()
        storescp.wait(timeout=10)
    assert status["delivered"] == 3
    received = [pydicom.dcmread(path) for path in sorted(out.iterdir())]
    assert {r.StudyInstanceUID for r in received} == {status["study_instance_uid"]}
    assert {r.PatientIdentityRemoved for r in received} == {"YES"}
    assert not {phi.PATIENT_ID} & {r.PatientID for r in received}

    refused = await eventually(
        lambda: start(platform, platform.auth, burned.StudyInstanceUID, "archive"), timeout=30
    )

    def failed() -> dict[str, Any] | None:
        answer: dict[str, Any] = platform.get(f"/api/deidentify/{refused['job_id']}").json()
        return answer if answer["state"] == "failed" else None

    reason = await eventually(failed, timeout=120)
    assert "BurnedInAnnotation YES" in reason["error"], reason
    assert platform.get(f"/api/deidentify/{refused['job_id']}/map").status_code == 404
