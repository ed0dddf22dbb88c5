"""The study lock workflow on a real Temporal dev server (update-with-start needs one):
exclusive leases exclude everything, shared ones each other not; a waiting move or purge
goes before readers that come after it, a purge before a move; an unanswered wait fails
with LOCK_BUSY; leases expire; an admin's force release frees the study at once."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from infra.study_locks import StudyLocks
from schemas.locks import (
    LOCK_BUSY,
    PRIORITY_MIGRATION,
    PRIORITY_PURGE,
    LockRequest,
)
from workflows.study_lock import StudyLockWorkflow

QUEUE = "locks"


@pytest.fixture(scope="module")
async def locks() -> AsyncIterator[StudyLocks]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
    )
    async with env, Worker(env.client, task_queue=QUEUE, workflows=[StudyLockWorkflow]):
        yield StudyLocks(env.client, QUEUE)


def exclusive(owner: str, priority: int = 0, wait: float = 30, ttl: float = 600) -> LockRequest:
    return LockRequest(
        mode="exclusive", owner=owner, priority=priority, wait_seconds=wait, ttl_seconds=ttl
    )


def shared(owner: str, wait: float = 30) -> LockRequest:
    return LockRequest(mode="shared", owner=owner, wait_seconds=wait)


def study() -> str:
    return f"2.25.{uuid.uuid4().int}"


async def test_shared_leases_share_and_exclusive_waits_for_them(locks: StudyLocks) -> None:
    uid = study()
    a = await locks.acquire(uid, shared("c-get:A"))
    b = await locks.acquire(uid, shared("c-move:B"))
    move = asyncio.create_task(locks.acquire(uid, exclusive("migrate", PRIORITY_MIGRATION)))
    await asyncio.sleep(1)
    assert not move.done()
    state = await locks.state(uid)
    assert [h.owner for h in state.holders] == ["c-get:A", "c-move:B"]
    assert [w.owner for w in state.waiting] == ["migrate"]
    # A reader that comes while the move waits goes after it.
    late = asyncio.create_task(locks.acquire(uid, shared("c-get:C")))
    await asyncio.sleep(1)
    assert not late.done()
    assert await locks.release(uid, a.token) and await locks.release(uid, b.token)
    granted = await asyncio.wait_for(move, 10)
    assert granted.mode == "exclusive" and not late.done()
    await locks.release(uid, granted.token)
    assert (await asyncio.wait_for(late, 10)).owner == "c-get:C"


async def test_a_purge_goes_before_a_move_and_a_busy_wait_fails(locks: StudyLocks) -> None:
    uid = study()
    held = await locks.acquire(uid, exclusive("first"))
    move = asyncio.create_task(locks.acquire(uid, exclusive("migrate", PRIORITY_MIGRATION)))
    await asyncio.sleep(0.5)
    purge = asyncio.create_task(locks.acquire(uid, exclusive("purge", PRIORITY_PURGE)))
    await asyncio.sleep(0.5)
    with pytest.raises(WorkflowUpdateFailedError) as busy:
        await locks.acquire(uid, exclusive("impatient", wait=0.5))
    assert isinstance(busy.value.cause, ApplicationError)
    assert busy.value.cause.type == LOCK_BUSY and "first" in str(busy.value.cause)
    await locks.release(uid, held.token)
    first = await asyncio.wait_for(purge, 10)
    assert first.owner == "purge" and not move.done()
    await locks.release(uid, first.token)
    await locks.release(uid, (await asyncio.wait_for(move, 10)).token)


async def test_leases_expire_and_force_release_frees_the_study(locks: StudyLocks) -> None:
    uid = study()
    await locks.acquire(uid, exclusive("crashed holder", ttl=1))
    # No release: after its TTL the study is free again.
    again = await locks.acquire(uid, exclusive("next", wait=10))
    assert again.owner == "next"
    waiting = asyncio.create_task(locks.acquire(uid, exclusive("after")))
    await asyncio.sleep(0.5)
    released = await locks.force_release(uid)
    assert [g.owner for g in released] == ["next"]
    assert (await asyncio.wait_for(waiting, 10)).owner == "after"
    assert await locks.force_release(study()) == []  # no lock workflow: nothing to release
