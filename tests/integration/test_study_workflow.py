"""Durable storage is a workflow: archive, stable study, search attributes, audit events."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from infra.stack import settings_to_env
from infra.storage.archive import make_minio
from tests.dicom_factory import ct_series
from tests.integration.conftest import Platform, eventually
from tests.integration.dimse_client import send_all

pytestmark = pytest.mark.integration


async def test_study_is_archived_then_stable_and_findable(
    platform: Platform, temporal_client: Any
) -> None:
    datasets = list(ct_series(30, size=128, patient_id="WF-PATIENT"))
    study = datasets[0].StudyInstanceUID
    acked: list[str] = []
    assert send_all(platform.dicom, datasets, acked, threading.Lock()) == []
    assert len(acked) == 30

    query = f'StudyInstanceUID = "{study}" AND PatientID = "WF-PATIENT"'

    async def completed() -> bool:
        async for wf in temporal_client.list_workflows(query):
            return bool(wf.status == WorkflowExecutionStatus.COMPLETED)
        return False

    # quiet period is 3 s in tests; archive of 30 small images takes a few seconds
    await eventually(completed, timeout=90)
    handle = temporal_client.get_workflow_handle(f"study-ingest:{study}")
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED

    s3 = make_minio(platform.settings.s3)
    archived = list(
        s3.list_objects(platform.settings.s3.archive_bucket, f"{study}/", recursive=True)
    )
    assert len(archived) == 30
    assert not (platform.settings.spool_dir / "landing" / study).exists(), "landing not drained"

    def audit_complete() -> bool:
        types = [row["type"] for row in platform.audit(study)]
        return (
            types.count("pacs.instance.received") == 30
            and types.count("pacs.instance.stored") == 30
            and types.count("pacs.study.stabilized") == 1
        )

    await eventually(audit_complete, timeout=30)
    received = platform.audit(study, "pacs.instance.received")
    assert {row["calling_ae"] for row in received} == {"CRASHSCU"}
    assert {row["sop_instance_uid"] for row in received} == set(acked)


async def test_identical_resend_is_a_no_op_and_different_bytes_are_rejected(
    platform: Platform,
) -> None:
    datasets = list(ct_series(2, size=64))
    study = datasets[0].StudyInstanceUID
    lock = threading.Lock()
    acked: list[str] = []
    assert send_all(platform.dicom, datasets, acked, lock) == []
    assert send_all(platform.dicom, datasets, acked, lock) == [], "identical re-send must succeed"
    changed = datasets[0]
    changed.PatientName = "Other^Name"
    assert send_all(platform.dicom, [changed], acked, lock) == [0x0111]

    def audited() -> bool:
        rows = platform.audit(study)
        return [r["type"] for r in rows].count("pacs.instance.rejected") == 1

    await eventually(audited, timeout=30)
    received = platform.audit(study, "pacs.instance.received")
    assert len(received) == 2, "a re-sent identical instance is announced once"


def _projection(platform: Platform, name: str) -> dict[str, Any]:
    projections = platform.get("/api/admin/projections").json()
    (status,) = [p for p in projections if p["name"] == name]
    return dict(status)


async def test_audit_projection_rebuilds_from_offset_zero(platform: Platform) -> None:
    datasets = list(ct_series(5, size=32))
    study = datasets[0].StudyInstanceUID
    assert send_all(platform.dicom, datasets, [], threading.Lock()) == []

    def received_all() -> list[dict[str, Any]] | None:
        rows = platform.audit(study)
        return rows if [r["type"] for r in rows].count("pacs.instance.received") == 5 else None

    before = await eventually(received_all, timeout=30)
    status = _projection(platform, "events")
    env = {**os.environ, **settings_to_env(platform.settings)}
    result = subprocess.run(
        [sys.executable, "-m", "apps.cli", "projections", "rebuild"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    def rebuilt() -> bool:
        now = _projection(platform, "events")
        if now["rebuilds"] != status["rebuilds"] + 1:
            return False
        rows = platform.audit(study)
        ids = {r["event_id"] for r in rows}
        return {r["event_id"] for r in before} <= ids and len(ids) == len(rows)

    await eventually(rebuilt, timeout=60)
    after = {r["event_id"]: r for r in platform.audit(study)}
    for row in before:
        assert after[row["event_id"]] == row, "a rebuilt row must equal the live one"
