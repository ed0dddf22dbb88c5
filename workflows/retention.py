"""RetentionWorkflow: one application of the retention rules. Asks which studies the
enabled rules select now, and deletes each as `DELETE /api/studies/{study}` would: a
tombstone, a DeletionWorkflow (the grace period, then the purge), `pacs.instances.deleted`
with actor `retention:<rule>`. A dry run only reports them. Started by the `retention`
schedule (every `PACS_LIFECYCLE__RETENTION_INTERVAL_SECONDS`) or by
`POST /api/retention/apply`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.deletion import DeletionActivities
    from activities.storage_rules import StorageRuleActivities
    from schemas.lifecycle import DeletionScope
    from schemas.retention import RetentionRunInput, RetentionRunResult
    from schemas.workflows import JobProgress
    from workflows.deletion import record_deletions

SCHEDULE_ID = "retention"
STEP_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))


def retention_workflow_id(suffix: str) -> str:
    return f"retention:{suffix}"


@workflow.defn
class RetentionWorkflow:
    def __init__(self) -> None:
        self._done = 0
        self._total: int | None = None
        self._stage = "matching"

    @workflow.query
    def progress(self) -> JobProgress:
        return JobProgress(done=self._done, total=self._total, stage=self._stage)

    @workflow.run
    async def run(self, start: RetentionRunInput) -> RetentionRunResult:
        matched = await workflow.execute_activity_method(
            StorageRuleActivities.retention_candidates,
            start.limit,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=STEP_RETRY,
        )
        result = RetentionRunResult(dry_run=start.dry_run, matched=matched)
        self._total = len(matched)
        if start.dry_run:
            self._stage = "done"
            return result
        self._stage = "deleting"
        for match in matched:
            stored = await workflow.execute_activity_method(
                DeletionActivities.tombstone_scopes,
                args=[
                    [str(workflow.uuid4())],
                    [DeletionScope(study_instance_uid=match.study_instance_uid)],
                ],
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=STEP_RETRY,
            )
            await record_deletions(
                stored, start.grace_seconds, match.patient_id,
                f"retention rule {match.rule}", f"retention:{match.rule}",
            )  # fmt: skip
            result.deletions += [s.deletion_id for s in stored]
            self._done += 1
        self._stage = "done"
        return result
