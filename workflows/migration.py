"""StudyMigrationWorkflow: a study's archived objects moved to another tier, page by page
(activities/migration.py: copy, verify by content, announce `pacs.instance.migrated`, remove
the source), until no object of the study is left outside the target tier; all of it under
the study's exclusive lease (workflows/study_lock.py), so never beside a purge or a retrieve.

Id `migrate:<study>`: one move of a study at a time (a second request while one runs is
refused, whichever tier it asks for); found in the jobs API by StudyInstanceUID and PatientID.
Started by `POST /api/studies/{study}/migrate`, by the storage rules' runs, or by a recall.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.migration import MigrationActivities
    from activities.study_lock import LockActivities
    from schemas.locks import PRIORITY_MIGRATION, LockGrant, LockRequest
    from schemas.tiers import MigrationInput, MigrationPage, MigrationResult
    from schemas.workflows import JobProgress

# A store down: keep trying, backing off to 2 minutes.
STEP_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=2))
# How long one ask for the study's lease waits; then it asks again (for as long as it takes).
LOCK_WAIT = timedelta(minutes=10)
# A move holds the study at most this long (a worker that died does not hold it forever).
LOCK_TTL = timedelta(hours=12)


async def acquire_lock(study: str, owner: str, priority: int) -> LockGrant:
    """An exclusive lease on the study, for a workflow's step that changes its storage."""
    request = LockRequest(
        mode="exclusive",
        owner=owner,
        ttl_seconds=LOCK_TTL.total_seconds(),
        priority=priority,
        wait_seconds=LOCK_WAIT.total_seconds(),
    )
    return await workflow.execute_activity_method(
        LockActivities.acquire_study_lock,
        args=[study, request],
        start_to_close_timeout=LOCK_WAIT + timedelta(minutes=1),
        heartbeat_timeout=timedelta(seconds=60),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
    )


async def release_lock(study: str, grant: LockGrant) -> None:
    await workflow.execute_activity_method(
        LockActivities.release_study_lock,
        args=[study, grant.token],
        start_to_close_timeout=timedelta(minutes=1),
        retry_policy=STEP_RETRY,
    )


def migration_workflow_id(study_instance_uid: str) -> str:
    return f"migrate:{study_instance_uid}"


@workflow.defn
class StudyMigrationWorkflow:
    def __init__(self) -> None:
        self._done = 0
        self._stage = "moving"

    @workflow.query
    def progress(self) -> JobProgress:
        return JobProgress(done=self._done, total=None, stage=self._stage)

    @workflow.run
    async def run(self, start: MigrationInput) -> MigrationResult:
        study = start.study_instance_uid
        # Never beside a purge, or a retrieve under way (they hold the study's lease).
        self._stage = "waiting for the study lock"
        grant = await acquire_lock(study, workflow.info().workflow_id, PRIORITY_MIGRATION)
        self._stage = "moving"
        try:
            return await self._move(start)
        finally:
            await release_lock(study, grant)

    async def _move(self, start: MigrationInput) -> MigrationResult:
        result = MigrationResult(study_instance_uid=start.study_instance_uid, to_tier=start.to_tier)
        page = MigrationPage(
            study_instance_uid=start.study_instance_uid,
            to_tier=start.to_tier,
            page_size=start.page_size,
        )
        while True:
            moved = await workflow.execute_activity_method(
                MigrationActivities.migrate_page,
                page,
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=STEP_RETRY,
            )
            result.moved += moved.moved
            result.already += moved.already
            result.bytes_moved += moved.bytes_moved
            result.damaged += moved.damaged
            self._done = result.moved + result.already
            if not moved.last_key:
                break
            page.start_after = moved.last_key
        self._stage = "done"
        return result
