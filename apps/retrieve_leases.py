"""Shared leases on the studies a C-GET or C-MOVE sends, taken from a DIMSE handler's
thread, so a move of the study to another tier waits until the retrieve is done (and a
retrieve asked during a move waits for the move). A lease that is not granted in time, or
a Temporal that does not answer, does not fail the retrieve: reads find every instance in
whichever tier holds it (infra/storage/tiers.py); the retrieve goes on and it is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from infra.settings import Settings
from infra.study_locks import StudyLocks
from infra.temporal_client import connect_temporal
from schemas.locks import PRIORITY_RETRIEVE, LockGrant, LockRequest

log = logging.getLogger(__name__)

# A retrieve holds its studies at most this long (a gateway that died does not hold them).
LEASE_TTL_SECONDS = 3600.0


class RetrieveLeases:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self.wait = settings.tiers.retrieve_lock_wait_seconds
        self._locks: StudyLocks | None = None
        self._connecting = asyncio.Lock()

    async def _client(self) -> StudyLocks:
        async with self._connecting:
            if self._locks is None:
                client = await connect_temporal(self.settings.temporal, attempts=1)
                self._locks = StudyLocks(client, self.settings.temporal.ingest_task_queue)
            return self._locks

    async def _acquire(self, study: str, owner: str) -> LockGrant:
        request = LockRequest(
            mode="shared", owner=owner, ttl_seconds=LEASE_TTL_SECONDS,
            priority=PRIORITY_RETRIEVE, wait_seconds=self.wait,
        )  # fmt: skip
        return await (await self._client()).acquire(study, request)

    async def _release(self, study: str, token: str) -> None:
        await (await self._client()).release(study, token)

    @contextmanager
    def held(self, studies: Iterable[str], owner: str) -> Iterator[None]:
        """Blocking: for the pynetdicom thread that runs the retrieve."""
        grants: list[tuple[str, LockGrant]] = []
        try:
            for study in sorted(set(studies)):
                future = asyncio.run_coroutine_threadsafe(self._acquire(study, owner), self.loop)
                try:
                    grants.append((study, future.result(timeout=self.wait + 30)))
                except Exception as exc:  # noqa: BLE001 - the retrieve goes on regardless
                    log.warning("%s goes on without a lease on %s: %r", owner, study, exc)
            yield
        finally:
            for study, grant in grants:
                asyncio.run_coroutine_threadsafe(self._release(study, grant.token), self.loop)
