"""`pacs projections rebuild` over ≥10,000 instances yields exactly the live read models,
deletions (of a study, a series and an instance) included."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from infra.eventlog import EventPublisher
from infra.stack import settings_to_env
from schemas.events import Event, InstanceReceived, InstancesDeleted, StudyPatientUpdated
from schemas.lifecycle import DeletionScope
from tests.integration.conftest import Platform, eventually
from tests.synthetic import synthetic_events

pytestmark = pytest.mark.integration

INSTANCES = 10_000
PER_STUDY = 200  # 4 series of 50
DELETED = PER_STUDY + PER_STUDY // 4 + 1  # a study, a series and an instance


def _status(platform: Platform) -> dict[str, Any]:
    response = platform.get("/api/admin/projections", timeout=30)
    response.raise_for_status()
    return {p["name"]: p for p in response.json()}


def _checksums(platform: Platform) -> dict[str, Any]:
    response = platform.get("/api/admin/projections/checksums", timeout=120)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _positions(platform: Platform) -> dict[str, Any]:
    return {name: p["positions"] for name, p in _status(platform).items()}


async def _quiet_positions(platform: Platform) -> dict[str, Any]:
    """Positions once nothing new has arrived for a while. Every study announces itself
    stable `stable_after_seconds` after its last instance, so the last of those events may
    come well after the instances (under load, later than a fixed few seconds)."""
    quiet_for = 2 * platform.settings.ingest.stable_after_seconds + 5
    loop = asyncio.get_running_loop()
    previous: dict[str, Any] = {}
    changed_at = loop.time()
    deadline = changed_at + 300
    while loop.time() < deadline:
        now = _positions(platform)
        if now != previous:
            previous, changed_at = now, loop.time()
        # A projection with no events of its kind (e.g. the worklist) has no position.
        elif now["catalog"] and loop.time() - changed_at >= quiet_for:
            return now
        await asyncio.sleep(1)
    raise AssertionError(f"the log never went quiet: {previous}")


def deletions(events: list[InstanceReceived]) -> list[Event]:
    """A whole study, a series of the second and an instance of the third."""
    first, second, third = (
        next(e for e in events if e.instance.study_instance_uid == uid).instance
        for uid in sorted({e.instance.study_instance_uid for e in events})[:3]
    )
    scopes = [
        DeletionScope(study_instance_uid=first.study_instance_uid),
        DeletionScope(study_instance_uid=second.study_instance_uid,
                      series_instance_uid=second.series_instance_uid),
        DeletionScope(study_instance_uid=third.study_instance_uid,
                      series_instance_uid=third.series_instance_uid,
                      sop_instance_uids=[third.sop_instance_uid]),
    ]  # fmt: skip
    purge_after = datetime.now(UTC) + timedelta(days=7)
    return [
        InstancesDeleted(deletion_id=f"rebuild-{n}", scope=scope, actor="test",
                         purge_after=purge_after)
        for n, scope in enumerate(scopes)
    ]  # fmt: skip


def corrections(events: list[InstanceReceived]) -> list[Event]:
    """The fourth study merged into the fifth's patient, the sixth's name corrected."""
    studies = sorted({e.instance.study_instance_uid for e in events})[3:6]
    fourth, fifth, sixth = (
        next(e for e in events if e.instance.study_instance_uid == uid) for uid in studies
    )
    return [
        StudyPatientUpdated(
            study_instance_uid=studies[0], patient_id=fourth.patient_id, kind="merge",
            changes={"PatientID": fifth.patient_id, "PatientName": "MERGED^PATIENT"},
            actor="test",
        ),
        StudyPatientUpdated(
            study_instance_uid=studies[2], patient_id=sixth.patient_id, kind="correction",
            changes={"PatientName": "CORRECTED^NAME", "PatientSex": "O"}, actor="test",
        ),
    ]  # fmt: skip


async def test_rebuild_equals_live_at_ten_thousand_instances(
    platform: Platform, temporal_client: Any
) -> None:
    publisher = EventPublisher(platform.settings.kafka)
    await publisher.start()
    try:
        events = list(synthetic_events(INSTANCES, seed=10))
        for start in range(0, len(events), 1000):
            await publisher.publish_many(events[start : start + 1000])
        await publisher.publish_many(deletions(events))
        await publisher.publish_many(corrections(events))
    finally:
        await publisher.stop()
    patients = sorted({e.patient_id for e in events})

    def all_projected() -> bool:
        response = platform.get(
            "/dicom-web/studies",
            params={"PatientID": "SYN*", "limit": 10_000,
                    "includefield": "NumberOfStudyRelatedInstances"},
            timeout=60,
        )  # fmt: skip
        counts = [s["00201208"]["Value"][0] for s in response.json()]
        seen.append((len(counts), sum(counts)))
        return len(counts) == INSTANCES // PER_STUDY - 1 and sum(counts) == INSTANCES - DELETED

    seen: list[tuple[int, int]] = []
    started = asyncio.get_running_loop().time()
    try:
        await eventually(all_projected, timeout=300, interval=2)
    except AssertionError:
        raise AssertionError(
            f"(studies, instances) seen: {seen[-3:]}; positions {_status(platform)}"
        ) from None
    print(f"projected live in {asyncio.get_running_loop().time() - started:.1f} s")
    # Each study's ingest workflow still archives (nothing is landed for synthetic events)
    # and announces the study stable: those events must be on the log before the snapshot,
    # however long a loaded machine takes (a CI run once had one arrive during the rebuild).
    studies = sorted({e.instance.study_instance_uid for e in events})

    async def workflows_done() -> bool:
        for study in studies:
            try:
                described = await temporal_client.get_workflow_handle(
                    f"study-ingest:{study}"
                ).describe()
            except RPCError:
                return False  # not started yet
            if described.status != WorkflowExecutionStatus.COMPLETED:
                return False
        return True

    await eventually(workflows_done, timeout=600, interval=2)
    while True:  # the snapshot must be of exactly these positions
        live_positions = await _quiet_positions(platform)
        live = _checksums(platform)
        if _positions(platform) == live_positions:
            break
    assert live["instances"]["rows"] >= INSTANCES - DELETED
    assert live["instance_metadata"]["rows"] >= INSTANCES - DELETED
    assert live["studies"]["rows"] >= INSTANCES // PER_STUDY - 1
    assert live["catalog_deletions"]["rows"] >= 3
    assert live["patients"]["rows"] >= len(patients)
    rebuilds = _status(platform)["catalog"]["rebuilds"]

    env = {**os.environ, **settings_to_env(platform.settings)}
    result = subprocess.run(
        [sys.executable, "-m", "apps.cli", "projections", "rebuild"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    def caught_up() -> bool:
        status = _status(platform)
        return status["catalog"]["rebuilds"] == rebuilds + 1 and all(
            status[name]["positions"] == where for name, where in live_positions.items()
        )

    started = asyncio.get_running_loop().time()
    try:
        await eventually(caught_up, timeout=600, interval=2)
    except AssertionError:
        raise AssertionError(
            f"rebuild not caught up: {_status(platform)}; live positions {live_positions}"
        ) from None
    print(f"rebuilt in {asyncio.get_running_loop().time() - started:.1f} s")
    rebuilt = _checksums(platform)
    assert _positions(platform) == live_positions, "an event arrived during the rebuild"
    assert rebuilt == live, "every rebuilt table must equal the live one, row for row"
