"""StorageRulesWorkflow: one application of the storage rules. Asks which studies the
enabled rules move now (the API's tiers read model, joined with the catalog and the audit
trail's reads), and moves them, `at_once` StudyMigrationWorkflows at a time; a dry run only
reports them. Started by the `tier-migration` schedule (every
`PACS_TIERS__RULES_INTERVAL_SECONDS`) or by `POST /api/storage/apply-rules`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.storage_rules import StorageRuleActivities
    from schemas.tiers import MigrationInput, RulesRunInput, RulesRunResult
    from schemas.workflows import JobProgress
    from workflows.deletion import study_keys
    from workflows.migration import StudyMigrationWorkflow, migration_workflow_id

SCHEDULE_ID = "tier-migration"


def rules_workflow_id(suffix: str) -> str:
    return f"tier-rules:{suffix}"


@workflow.defn
class StorageRulesWorkflow:
    def __init__(self) -> None:
        self._done = 0
        self._total: int | None = None
        self._stage = "matching"

    @workflow.query
    def progress(self) -> JobProgress:
        return JobProgress(done=self._done, total=self._total, stage=self._stage)

    async def _move(self, study: str, patient_id: str, to_tier: str, rule: str) -> bool:
        try:
            await workflow.execute_child_workflow(
                StudyMigrationWorkflow.run,
                MigrationInput(
                    study_instance_uid=study,
                    to_tier=to_tier,
                    reason=f"rule:{rule}",
                    actor="storage-rules",
                    patient_id=patient_id,
                ),
                id=migration_workflow_id(study),
                search_attributes=study_keys(study, patient_id),
            )
        except WorkflowAlreadyStartedError:
            return False  # a move of it is running (manual, or a recall): not ours to redo
        return True

    @workflow.run
    async def run(self, start: RulesRunInput) -> RulesRunResult:
        matched = await workflow.execute_activity_method(
            StorageRuleActivities.storage_candidates,
            start.limit,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        result = RulesRunResult(dry_run=start.dry_run, matched=matched)
        self._total = len(matched)
        if start.dry_run:
            self._stage = "done"
            return result
        self._stage = "moving"
        for first in range(0, len(matched), start.at_once):
            group = matched[first : first + start.at_once]
            outcomes = await asyncio.gather(
                *(self._move(m.study_instance_uid, m.patient_id, m.to_tier, m.rule) for m in group),
                return_exceptions=True,
            )
            for match, outcome in zip(group, outcomes, strict=True):
                if outcome is True:
                    result.moved += 1
                elif isinstance(outcome, BaseException):
                    result.failed.append(match.study_instance_uid)
            self._done += len(group)
        self._stage = "done"
        return result
