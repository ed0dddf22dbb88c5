"""DeletionWorkflow: a deletion's purge. The read models dropped what it covers when the
deletion was recorded; this waits out the grace period (a durable timer: a restart or a
worker crash does not shorten or lose it), then purges the bytes (activities/deletion.py),
retrying until storage answers, and records `pacs.instances.purged`.

Id `delete:<deletion id>`; found in the jobs API by StudyInstanceUID (and PatientID).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.deletion import DeletionActivities
    from activities.events import EventActivities
    from schemas.events import Event, InstancesDeleted, InstancesPurged
    from schemas.lifecycle import PurgeInput, PurgeResult, Tombstoned
    from schemas.locks import PRIORITY_PURGE
    from schemas.workflows import JobProgress, PublishEvents
    from workflows.migration import acquire_lock, release_lock
    from workflows.prefetch import PATIENT_ID, STUDY_UID

# Storage down, or a deleted copy still landing: keep trying, backing off to 10 minutes.
PURGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=10)
)


def deletion_workflow_id(deletion_id: str) -> str:
    return f"delete:{deletion_id}"


def study_keys(study_instance_uid: str, patient_id: str) -> TypedSearchAttributes:
    """A deletion's (or rejection's) job is found by its study and patient."""
    pairs = [SearchAttributePair(STUDY_UID, study_instance_uid)]
    if patient_id:
        pairs.append(SearchAttributePair(PATIENT_ID, patient_id))
    return TypedSearchAttributes(pairs)


def search_attributes(start: PurgeInput, patient_id: str) -> TypedSearchAttributes:
    return study_keys(start.scope.study_instance_uid, patient_id)


@workflow.defn
class DeletionWorkflow:
    def __init__(self) -> None:
        self._stage = "grace period"

    @workflow.query
    def progress(self) -> JobProgress:
        return JobProgress(done=int(self._stage == "purged"), total=1, stage=self._stage)

    @workflow.run
    async def run(self, start: PurgeInput) -> PurgeResult:
        wait = (start.purge_after - workflow.now()).total_seconds()
        if wait > 0:
            await workflow.sleep(wait)
        # Never beside a move of the study (it holds the study's lease while it copies).
        self._stage = "waiting for the study lock"
        study = start.scope.study_instance_uid
        grant = await acquire_lock(study, workflow.info().workflow_id, PRIORITY_PURGE)
        self._stage = "purging"
        try:
            result = await workflow.execute_activity_method(
                DeletionActivities.purge_deleted,
                start,
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=timedelta(seconds=90),
                retry_policy=PURGE_RETRY,
            )
        finally:
            await release_lock(study, grant)
        purged = InstancesPurged(
            event_id=workflow.uuid4(),
            occurred_at=workflow.now(),
            deletion_id=start.deletion_id,
            scope=start.scope,
            objects_removed=result.objects_removed,
            bytes_removed=result.bytes_removed,
            kept=result.kept,
        )
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=[purged]),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        self._stage = "purged"
        return result


async def record_deletions(
    stored: list[Tombstoned], grace_seconds: float, patient_id: str, reason: str, actor: str
) -> None:
    """What follows the tombstones of workflow-made deletions (a rejection note, a retention
    run), in the order a DELETE takes: a DeletionWorkflow each (abandoned: the grace period
    outlives the caller), then `pacs.instances.deleted`, which hides them everywhere."""
    now = workflow.now()
    purge_after = now + timedelta(seconds=grace_seconds)
    events: list[Event] = []
    for done in stored:
        purge = PurgeInput(
            deletion_id=done.deletion_id, scope=done.scope, deleted_at=now, purge_after=purge_after
        )
        await workflow.start_child_workflow(
            DeletionWorkflow.run,
            purge,
            id=deletion_workflow_id(done.deletion_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=search_attributes(purge, patient_id),
        )
        events.append(
            InstancesDeleted(
                event_id=workflow.uuid4(),
                occurred_at=now,
                deletion_id=done.deletion_id,
                scope=done.scope,
                patient_id=patient_id,
                reason=reason,
                actor=actor,
                purge_after=purge_after,
            )
        )
    if events:
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=events),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
