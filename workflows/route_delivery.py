"""RouteDeliveryWorkflow: everything the routing rules send to one destination, one way
(`route:<destination>:<via>`), in the order it was stored.

The dispatcher signals `enqueue` with what a rule matched (signal-with-start). The workflow
sends the queue head in batches (one association, or one STOW-RS request, per batch); when
the destination is down or refuses, it waits with exponential backoff (1 s doubling to
`MAX_BACKOFF`) and sends the same batch again, so order per series holds and nothing later
overtakes. Items older than their rule's maximum age become dead letters
(`pacs.route.failed`), listed by the `state` query and put back by the `replay` signal.
One workflow per destination: a dead destination delays nobody else. An item of a rule
with a window (e.g. 20:00-06:00) waits in the queue while its window is closed, and the
others go on past it; its maximum age counts from its window's opening. An item that cannot
be de-identified as its rule asks is a dead letter at once (sending it again cannot help).

A crash between a send and its record re-sends at most that batch: the receiver sees the
same bytes again (a duplicate C-STORE of identical content, which PACSs accept).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from activities.routing import RoutingActivities
    from schemas.events import Event, RouteDelivered, RouteFailed
    from schemas.routing import (
        BatchOutcome,
        DeadLetter,
        DeliverBatch,
        DeliveryState,
        RouteDeliveryInput,
        RouteItem,
        RouteItems,
        StudiesStable,
    )
    from schemas.workflows import JobProgress, PublishEvents

MAX_BACKOFF = timedelta(seconds=60)
# Delivered keys remembered to drop repeated signals (a dispatcher re-reading up to one poll
# of the log); bounded so the continue-as-new input stays small (~150 bytes a key).
RECENT = 2_000
# History events per run before continue-as-new: batches, failed attempts during an outage
# (one every MAX_BACKOFF) and signals all add up; Temporal's limit is 51,200.
HISTORY_LIMIT = 10_000


def workflow_id(destination: str, via: str) -> str:
    return f"route:{destination}:{via}"


def by_study(items: list[RouteItem]) -> dict[str, list[RouteItem]]:
    grouped: dict[str, list[RouteItem]] = {}
    for item in items:
        grouped.setdefault(item.study_instance_uid, []).append(item)
    return grouped


@workflow.defn
class RouteDeliveryWorkflow:
    @workflow.init
    def __init__(self, start: RouteDeliveryInput) -> None:
        # State from the input at once: signal-with-start's signal may run before run().
        self._state = start
        self._recent: set[tuple[str, str]] = set(start.recent)
        self._failing_since: datetime | None = None
        self._last_error = ""
        self._next_attempt: datetime | None = None
        self._wake = False
        self._arrivals = 0  # counts enqueue/release signals: new items may be sendable

    def _s(self) -> RouteDeliveryInput:
        return self._state

    @workflow.signal
    def enqueue(self, more: RouteItems) -> None:
        state = self._s()
        # Already waiting or dead: a repeat (the dispatcher re-reading the log) adds nothing.
        queued = {i.key for i in state.queued} | {d.item.key for d in state.dead}
        queued |= {i.key for items in state.held.values() for i in items}
        for item in more.items:
            if item.key not in self._recent and item.key not in queued:
                if more.held:
                    state.held.setdefault(item.study_instance_uid, []).append(item)
                else:
                    state.queued.append(item)
                queued.add(item.key)
        self._arrivals += 1
        # No wake: the main loop waits for a non-empty queue anyway, and during a backoff new
        # items must not cut it short (with ingest going on, that would retry every signal).

    @workflow.signal
    def release(self, stable: StudiesStable) -> None:
        """Held items of these studies join the queue, in the order they arrived."""
        state = self._s()
        for study in stable.study_instance_uids:
            state.queued.extend(state.held.pop(study, []))
        self._arrivals += 1

    @workflow.signal
    def pause(self) -> None:
        self._s().paused = True

    @workflow.signal
    def resume(self) -> None:
        self._s().paused = False
        self._wake = True

    @workflow.signal
    def replay(self) -> None:
        """Dead letters back to the front of the queue, their age counted from now."""
        state = self._s()
        now = workflow.now()
        again = [
            d.item.model_copy(
                update={
                    "received_at": now,
                    "due_at": d.item.window.next_opening(now) if d.item.window else None,
                }
            )
            for d in state.dead
        ]
        state.dead = []
        state.queued = again + state.queued
        self._failing_since = None
        self._wake = True

    @workflow.query
    def state(self) -> DeliveryState:
        s = self._s()
        return DeliveryState(
            destination=s.destination,
            via=s.via,
            queued=len(s.queued),
            held=sum(len(items) for items in s.held.values()),
            delivered_total=s.delivered_total,
            dead_letters=s.dead,
            paused=s.paused,
            failing_since=self._failing_since,
            last_error=self._last_error,
            next_attempt_at=self._next_attempt,
        )

    @workflow.query
    def progress(self) -> JobProgress:
        """Delivered of all it was given (this run and the runs it continues)."""
        s = self._s()
        waiting = len(s.queued) + sum(len(items) for items in s.held.values()) + len(s.dead)
        if s.paused:
            stage = "paused"
        elif self._failing_since is not None:
            stage = f"failing: {self._last_error}"[:200]
        elif s.queued:
            stage = "sending" if self._next_attempt is None else "waiting for a window"
        else:
            stage = "idle"
        return JobProgress(done=s.delivered_total, total=s.delivered_total + waiting, stage=stage)

    @workflow.run
    async def run(self, start: RouteDeliveryInput) -> None:
        start = self._state
        backoff = timedelta(seconds=1)
        while not self._history_full():
            await workflow.wait_condition(lambda: bool(self._s().queued) and not self._s().paused)
            await self._dead_letter_expired()
            if not start.queued:
                continue
            now = workflow.now()
            batch = [i for i in start.queued if i.sendable(now)][: start.batch_size]
            if not batch:
                await self._wait_for_window()
                continue
            try:
                outcome: BatchOutcome = await workflow.execute_activity_method(
                    RoutingActivities.deliver_batch,
                    DeliverBatch(destination=start.destination, via=start.via, items=batch),
                    start_to_close_timeout=timedelta(minutes=10),
                    # Heartbeats come every 5 s: a worker that died mid-batch is noticed
                    # within 20 s, and the batch goes again from another.
                    heartbeat_timeout=timedelta(seconds=20),
                    # The workflow keeps the backoff: the queue stays visible meanwhile.
                    retry_policy=RetryPolicy(maximum_attempts=1),
                )
            except ActivityError as exc:
                cause = exc.cause if exc.cause is not None else exc
                self._last_error = str(cause)
                self._failing_since = self._failing_since or workflow.now()
                self._next_attempt = workflow.now() + backoff
                self._wake = False
                # A resume or replay wakes it early; new items do not.
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self._wake, timeout=backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = timedelta(seconds=1)
            self._failing_since, self._last_error, self._next_attempt = None, "", None
            sent = {i.key for i in batch}
            start.queued = [i for i in start.queued if i.key not in sent]
            refused = {(r.sop_instance_uid, r.sha256): r.reason for r in outcome.refused}
            if refused:
                gone = [i for i in batch if i.key in refused]
                await self._dead_letter(gone, [refused[i.key] for i in gone])
            skipped = set(outcome.skipped)
            batch = [
                i
                for i in batch
                if i.key not in refused and i.instance.sop_instance_uid not in skipped
            ]
            start.delivered_total += outcome.stored
            self._remember(batch)
            await self._publish(
                [
                    RouteDelivered(
                        event_id=workflow.uuid4(),
                        occurred_at=workflow.now(),
                        destination=start.destination,
                        via=start.via,
                        study_instance_uid=study,
                        sop_instance_uids=[i.instance.sop_instance_uid for i in items],
                        rules=sorted({i.rule for i in items}),
                    )
                    for study, items in by_study(batch).items()
                ]
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        start.recent = list(self._recent)[-RECENT:]
        workflow.continue_as_new(start)

    @staticmethod
    def _history_full() -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or (
            info.get_current_history_length() > HISTORY_LIMIT
        )

    def _remember(self, batch: list[RouteItem]) -> None:
        self._recent.update(i.key for i in batch)
        if len(self._recent) > RECENT:
            # Sets have no order: keep any RECENT of them (a repeat is then at worst resent).
            self._recent = set(list(self._recent)[-RECENT:])

    async def _wait_for_window(self) -> None:
        """Nothing queued may go now (their windows are closed): sleep until the first
        opens; new items (maybe sendable), a resume or a replay wake it earlier."""
        now = workflow.now()
        openings = [i.window.next_opening(now) for i in self._s().queued if i.window]
        until = min(openings, default=now + MAX_BACKOFF)
        self._next_attempt = until
        arrivals, self._wake = self._arrivals, False
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._wake or self._arrivals != arrivals,
                timeout=max(until - now, timedelta(seconds=1)),
            )
        self._next_attempt = None

    async def _dead_letter_expired(self) -> None:
        """Items past their maximum age leave the queue as dead letters."""
        now = workflow.now()
        expired = [i for i in self._s().queued if i.expired(now)]
        if expired:
            reason = self._last_error or "not delivered within the maximum age"
            await self._dead_letter(expired, [reason] * len(expired))

    async def _dead_letter(self, items: list[RouteItem], reasons: list[str]) -> None:
        """These items leave the queue as dead letters, each for its reason."""
        state = self._s()
        now = workflow.now()
        gone = {i.key for i in items}
        why = {i.key: r for i, r in zip(items, reasons, strict=True)}
        state.queued = [i for i in state.queued if i.key not in gone]
        state.dead.extend(DeadLetter(item=i, reason=why[i.key], failed_at=now) for i in items)
        events: list[Event] = [
            RouteFailed(
                event_id=workflow.uuid4(),
                occurred_at=now,
                destination=state.destination,
                via=state.via,
                study_instance_uid=study,
                sop_instance_uids=[i.instance.sop_instance_uid for i in group],
                reason=why[group[0].key],
            )
            for study, group in by_study(items).items()
        ]
        await self._publish(events)

    async def _publish(self, events: list[Event]) -> None:
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=events),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
