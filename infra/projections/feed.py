"""Feeds registered projections from the event log, each resuming from its own positions.

A stop-gap until the shared projector runner serves every projection; it follows the
audit projector's pattern: the position lives in the projection's own rows, so the
consumer group never commits and a rebuild is drop + read from zero.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.eventlog import PollPacer, make_consumer
from infra.projections.base import LogRecord, Projection
from infra.settings import KafkaSettings
from schemas.events import parse_event

log = logging.getLogger(__name__)


class ProjectionFeed:
    """Runs one projection against the log until stopped."""

    def __init__(self, projection: Projection, kafka: KafkaSettings) -> None:
        self.projection = projection
        self.kafka = kafka
        self._rebuild = asyncio.Event()

    def request_rebuild(self) -> None:
        self._rebuild.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.projection.ensure_tables)
            consumer = make_consumer(self.kafka, group_id=f"pacs-projection-{self.projection.name}")
            try:
                await consumer.start()
                await self._consume(consumer, stop)
            except Exception:
                log.exception("projection %s failed; retrying", self.projection.name)
                await asyncio.sleep(2)
            finally:
                await consumer.stop()
            if self._rebuild.is_set():
                self._rebuild.clear()
                await asyncio.to_thread(self.projection.drop)
                log.info("projection %s dropped; rebuilding from zero", self.projection.name)

    async def _consume(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        positioned = False
        pacer = PollPacer(self.kafka.consumer_poll_interval_seconds)
        while not stop.is_set() and not self._rebuild.is_set():
            await pacer.wait()
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            if not positioned and consumer.assignment():
                positions = await asyncio.to_thread(self.projection.positions)
                for tp in consumer.assignment():
                    await _seek(consumer, tp, positions)
                positioned = True
                continue  # what was fetched before seeking may be from the wrong place
            records: list[LogRecord] = []
            for batch in batches.values():
                for record in batch:
                    if record.value is None:
                        continue
                    try:
                        event = parse_event(record.value)
                    except ValueError:
                        log.warning(
                            "skipping undecodable record %d/%d", record.partition, record.offset
                        )
                        continue
                    records.append(LogRecord(record.partition, record.offset, event, record.value))
            if records:
                await asyncio.to_thread(self.projection.apply, records)


async def _seek(consumer: AIOKafkaConsumer, tp: TopicPartition, positions: dict[int, int]) -> None:
    if tp.partition in positions:
        consumer.seek(tp, positions[tp.partition] + 1)
    else:
        await consumer.seek_to_beginning(tp)
