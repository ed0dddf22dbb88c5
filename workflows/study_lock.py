"""StudyLockWorkflow: the leases on one study's storage (id `lock:<study>`), granted by
updates, so every grant and release is in the workflow's history.

- `acquire(LockRequest)` waits (up to `wait_seconds`) until the lease can be granted, then
  answers a LockGrant with a token; else fails with LOCK_BUSY naming who holds it.
  Exclusive: nobody else holds one. Shared: nobody holds an exclusive one, and no exclusive
  request of at least its priority waits (a waiting purge or move is not starved by a stream
  of readers). Among waiters, higher priority first, then first come.
- `release(token)`; `force_release()` drops every lease (the admin's way out); leases
  expire at `expires_at` (a holder that crashed does not hold the study forever).
- Ends when nothing is held or waited for a while (the next acquire starts it again, by
  update-with-start); continues as new when its history grows long.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas.locks import (
        ACQUIRE,
        FORCE_RELEASE,
        LOCK_BUSY,
        LOCK_WORKFLOW,
        RELEASE,
        STATE,
        LockGrant,
        LockRequest,
        LockState,
        LockWaiter,
    )

# Idle this long (nothing held, nobody waiting): the workflow ends.
IDLE_SECONDS = 60.0


@dataclass
class _Ticket:
    seq: int
    request: LockRequest
    since: datetime

    def key(self) -> tuple[int, int]:
        return (-self.request.priority, self.seq)


@workflow.defn(name=LOCK_WORKFLOW)
class StudyLockWorkflow:
    # The state comes from the start arguments here, not in `run`: the update that started
    # the workflow (update-with-start) is handled before `run` begins.
    @workflow.init
    def __init__(self, study: str, holders: list[LockGrant] | None = None) -> None:
        self._study = study
        self._holders: dict[str, LockGrant] = {g.token: g for g in holders or []}
        self._waiting: list[_Ticket] = []
        self._seq = 0
        self._changed = False

    @workflow.run
    async def run(self, study: str, holders: list[LockGrant] | None = None) -> None:
        while True:
            self._expire()
            if not self._holders and not self._waiting:
                self._changed = False
                try:
                    await workflow.wait_condition(lambda: self._changed, timeout=IDLE_SECONDS)
                except TimeoutError:
                    if not self._holders and not self._waiting:
                        await workflow.wait_condition(workflow.all_handlers_finished)
                        if not self._holders and not self._waiting:
                            return
                continue
            if workflow.info().is_continue_as_new_suggested() and not self._waiting:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(args=[study, list(self._holders.values())])
            self._changed = False
            timeout = self._until_next_expiry()
            with contextlib.suppress(TimeoutError):  # a lease's expiry: seen at the top
                await workflow.wait_condition(lambda: self._changed, timeout=timeout)

    def _until_next_expiry(self) -> float | None:
        if not self._holders:
            return None
        soonest = min(g.expires_at for g in self._holders.values())
        return max(0.001, (soonest - workflow.now()).total_seconds())

    def _expire(self) -> None:
        now = workflow.now()
        for token, grant in list(self._holders.items()):
            if grant.expires_at <= now:
                workflow.logger.warning("lease of %s on %s expired", grant.owner, self._study)
                del self._holders[token]
                self._changed = True

    def _grantable(self, ticket: _Ticket) -> bool:
        ahead = [t for t in self._waiting if t.key() < ticket.key()]
        if ticket.request.mode == "exclusive":
            return not self._holders and not ahead
        exclusive_held = any(g.mode == "exclusive" for g in self._holders.values())
        exclusive_ahead = any(t.request.mode == "exclusive" for t in ahead)
        return not exclusive_held and not exclusive_ahead

    @workflow.update(name=ACQUIRE)
    async def acquire(self, request: LockRequest) -> LockGrant:
        self._seq += 1
        ticket = _Ticket(self._seq, request, workflow.now())
        self._waiting.append(ticket)
        self._changed = True
        try:
            await workflow.wait_condition(
                lambda: self._grantable(ticket), timeout=request.wait_seconds or 0.001
            )
        except TimeoutError:
            held = ", ".join(sorted(g.owner for g in self._holders.values())) or "waiters ahead"
            raise ApplicationError(
                f"study {self._study} is locked by {held}", type=LOCK_BUSY, non_retryable=True
            ) from None
        finally:
            self._waiting.remove(ticket)
            self._changed = True
        now = workflow.now()
        grant = LockGrant(
            token=str(workflow.uuid4()),
            mode=request.mode,
            owner=request.owner,
            granted_at=now,
            expires_at=now + timedelta(seconds=request.ttl_seconds),
        )
        self._holders[grant.token] = grant
        return grant

    @workflow.update(name=RELEASE)
    def release(self, token: str) -> bool:
        self._changed = True
        return self._holders.pop(token, None) is not None

    @workflow.update(name=FORCE_RELEASE)
    def force_release(self) -> list[LockGrant]:
        released = list(self._holders.values())
        self._holders.clear()
        self._changed = True
        return released

    @workflow.query(name=STATE)
    def state(self) -> LockState:
        return LockState(
            study_instance_uid=self._study,
            holders=sorted(self._holders.values(), key=lambda g: g.granted_at),
            waiting=[
                LockWaiter(
                    owner=t.request.owner,
                    mode=t.request.mode,
                    priority=t.request.priority,
                    since=t.since,
                )
                for t in sorted(self._waiting, key=_Ticket.key)
            ],
        )
