"""Feeds every projection from one consumer of the log, in the process that owns ClickHouse.

Each projection keeps its own position (written with its rows), so the runner starts each
partition at the lowest position any projection needs and hands a projection only records
beyond its own position. Our positions live in ClickHouse, so the consumer group never
commits. A rebuild drops every projection and reads again from offset zero.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from clickhouse_connect.driver.exceptions import DatabaseError

from infra.clickhouse import ClickHouse
from infra.eventlog import PollPacer, make_consumer, newest_timestamp
from infra.metrics import PROJECTOR_LAG_SECONDS
from infra.readmodels.base import LogRecord, Projection
from infra.settings import KafkaSettings
from schemas.events import parse_event

log = logging.getLogger(__name__)

# aiokafka's default fetch_max_wait_ms: how long a background fetch may wait at the broker.
FETCH_WAIT_SECONDS = 0.5 + 0.5  # plus a margin for the round trip


class ProjectorRunner:
    """Runs `projections` until stopped; resumable, rebuildable on request."""

    def __init__(
        self,
        clickhouse: ClickHouse,
        kafka: KafkaSettings,
        projections: list[Projection],
        poll_interval: float,
    ) -> None:
        self.clickhouse = clickhouse
        self.kafka = kafka
        self.projections = projections
        self.poll_interval = poll_interval
        self._rebuild = asyncio.Event()
        self.rebuilds_completed = 0
        # Where each projection stands, per partition, as last applied (for status and waits).
        self.applied: dict[str, dict[int, int]] = {p.name: {} for p in projections}
        # Loop time before which every acknowledged event is applied (see wait_caught_up).
        self.caught_up_at = float("-inf")
        self._progress = asyncio.Event()

    def request_rebuild(self) -> None:
        self._rebuild.set()

    async def wait_caught_up(self, within: float, positions: dict[int, int] | None = None) -> bool:
        """Wait until every event the broker acknowledged before this call is applied to
        every read model, or at least the log up to `positions` (partition -> offset); False
        if that takes longer than `within` seconds (a steady stream of events can keep the
        projector from finding the log's end).

        A read model alone cannot tell "never happened" from "not applied yet"; callers that
        must report an absence as final (storage commitment) ask for this barrier first."""
        since = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(within):
                while self.caught_up_at < since and not self._applied_up_to(positions or {}):
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    def _applied_up_to(self, positions: dict[int, int]) -> bool:
        if not positions:
            return False
        return all(
            min((done.get(p, -1) for done in self.applied.values()), default=-1) >= offset
            for p, offset in positions.items()
        )

    def _note_fetch(self, started: float, empty: bool) -> None:
        if empty:
            # A fetch that found nothing new has read everything the broker held when it was
            # sent; the consumer's background fetch may have been sent up to one fetch wait
            # before this call began, so the guarantee only covers acknowledgements before that.
            self.caught_up_at = max(self.caught_up_at, started - FETCH_WAIT_SECONDS)
        self._progress.set()

    def positions(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for projection in self.projections:
            try:
                out[projection.name] = projection.positions()
            except DatabaseError:
                out[projection.name] = {}  # dropped a moment ago by a rebuild: at zero
        return out

    def checksums(self) -> dict[str, dict[str, str | int]]:
        """Rows and an order-independent hash of every table's current content (FINAL)."""
        out: dict[str, dict[str, str | int]] = {}
        for projection in self.projections:
            for table in projection.tables:
                ((rows, digest),) = self.clickhouse.rows(
                    f"SELECT count(), toString(sum(cityHash64(*))) FROM {table} FINAL"
                )
                out[table] = {"rows": int(rows), "checksum": str(digest)}
        return out

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            consumer = make_consumer(self.kafka, group_id="pacs-projector")
            try:
                for projection in self.projections:
                    await asyncio.to_thread(projection.ensure_tables)
                await consumer.start()
                await self._consume(consumer, stop)
            except Exception:
                log.exception("projector failed; retrying")
                await asyncio.sleep(2)
            finally:
                await consumer.stop()
            if self._rebuild.is_set():
                self._rebuild.clear()
                for projection in self.projections:
                    await asyncio.to_thread(projection.drop)
                    # At once, so status and queries never meet a missing table.
                    await asyncio.to_thread(projection.ensure_tables)
                self.applied = {p.name: {} for p in self.projections}
                self.caught_up_at = float("-inf")
                self.rebuilds_completed += 1
                log.info("read models dropped; rebuilding from offset zero")

    async def _consume(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        positioned = False
        pacer = PollPacer(
            self.poll_interval,
            self.kafka.projection_busy_poll_interval_seconds,
            self.kafka.projection_busy_records,
        )
        loop = asyncio.get_running_loop()
        while not stop.is_set() and not self._rebuild.is_set():
            await pacer.wait()
            started = loop.time()
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            if not positioned and consumer.assignment():
                await self._position(consumer)
                positioned = True
                continue  # what was fetched before seeking may be from the wrong place
            records = [rec for tp_records in batches.values() for rec in _decode(tp_records)]
            newest = newest_timestamp(batches.values())
            pacer.fetched(_live(len(records), newest))
            if records:
                await asyncio.to_thread(self._apply, records)
            _note_lag(newest)
            if positioned:
                self._note_fetch(started, empty=not any(batches.values()))

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        self.applied = dict(await asyncio.to_thread(self.positions))
        for tp in consumer.assignment():
            starts = [pos.get(tp.partition, -1) + 1 for pos in self.applied.values()]
            start = min(starts, default=0)
            if start == 0:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)

    def _apply(self, records: list[LogRecord]) -> None:
        for projection in self.projections:
            done = self.applied.setdefault(projection.name, {})
            fresh = [r for r in records if r.offset > done.get(r.partition, -1)]
            if not fresh:
                continue
            projection.apply(fresh)
            for record in fresh:
                done[record.partition] = max(done.get(record.partition, -1), record.offset)


# Records written longer ago than this are a backlog (a restart, a rebuild): read on at
# full pace rather than in the larger bites of a busy live log.
LIVE_WITHIN_SECONDS = 5.0


def _live(records: int, newest: float | None) -> int:
    """How many records a fetch brought, or 0 when its newest is old (catching up)."""
    if newest is None or time.time() - newest > LIVE_WITHIN_SECONDS:
        return 0
    return records


def _note_lag(newest: float | None) -> None:
    PROJECTOR_LAG_SECONDS.set(0.0 if newest is None else max(0.0, time.time() - newest))


def _decode(records: list[ConsumerRecord[bytes, bytes]]) -> list[LogRecord]:
    decoded = []
    for record in records:
        value = record.value or b""
        try:
            event = parse_event(value)
        except ValueError:
            log.warning("skipping undecodable record at %d/%d", record.partition, record.offset)
            continue
        decoded.append(LogRecord(record.partition, record.offset, event, value))
    return decoded
