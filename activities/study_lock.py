"""A workflow's lease on a study (a move, a purge), asked of the study's lock workflow."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from infra.study_locks import StudyLocks
from schemas.locks import LOCK_BUSY, LockGrant, LockRequest


class LockActivities:
    def __init__(self, locks: StudyLocks) -> None:
        self.locks = locks

    @activity.defn
    async def acquire_study_lock(self, study: str, request: LockRequest) -> LockGrant:
        """The lease, once granted; still busy after `wait_seconds`: a retryable failure,
        so the workflow keeps waiting (its retry policy says how long between asks)."""
        try:
            return await heartbeating(self.locks.acquire(study, request))
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == LOCK_BUSY:
                raise ApplicationError(str(cause.message), type=LOCK_BUSY) from None
            raise

    @activity.defn
    async def release_study_lock(self, study: str, token: str) -> bool:
        return await self.locks.release(study, token)
