"""Leases on a study's storage, from the study's lock workflow (workflows/study_lock.py),
reached by name through a Temporal client: acquire (update-with-start, so the first caller
starts the workflow), release, force release, state."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import (
    Client,
    RPCError,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCStatusCode

from schemas.locks import (
    ACQUIRE,
    FORCE_RELEASE,
    LOCK_WORKFLOW,
    RELEASE,
    STATE,
    LockGrant,
    LockRequest,
    LockState,
    lock_workflow_id,
)

log = logging.getLogger(__name__)


class StudyLocks:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def acquire(self, study: str, request: LockRequest) -> LockGrant:
        """Wait for the lease (WorkflowUpdateFailedError with cause type LOCK_BUSY when it
        is not granted within `request.wait_seconds`)."""
        for attempt in range(3):
            start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                LOCK_WORKFLOW,
                study,
                id=lock_workflow_id(study),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            try:
                grant: LockGrant = await self.client.execute_update_with_start_workflow(
                    ACQUIRE, request, start_workflow_operation=start, result_type=LockGrant
                )
                return grant
            except RPCError as exc:
                # The workflow ended (idle) as the update arrived: the next one starts anew.
                if exc.status != RPCStatusCode.NOT_FOUND or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def release(self, study: str, token: str) -> bool:
        handle = self.client.get_workflow_handle(lock_workflow_id(study))
        try:
            released: bool = await handle.execute_update(RELEASE, token, result_type=bool)
        except (RPCError, WorkflowUpdateFailedError) as exc:
            log.info("release of %s on %s: %r (nothing held any more)", token, study, exc)
            return False
        return released

    async def force_release(self, study: str) -> list[LockGrant]:
        handle = self.client.get_workflow_handle(lock_workflow_id(study))
        try:
            return list(await handle.execute_update(FORCE_RELEASE, result_type=list[LockGrant]))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return []
            raise

    async def state(self, study: str) -> LockState:
        handle = self.client.get_workflow_handle(lock_workflow_id(study))
        try:
            found: LockState = await handle.query(STATE, result_type=LockState)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return LockState(study_instance_uid=study)
            raise
        return found

    @asynccontextmanager
    async def held(self, study: str, request: LockRequest) -> AsyncIterator[LockGrant]:
        grant = await self.acquire(study, request)
        try:
            yield grant
        finally:
            await self.release(study, grant.token)
