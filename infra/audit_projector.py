"""Projects every event on the log into the ClickHouse `events` table (the audit trail).

The table records, row by row, the log partition and offset it came from; on start the
projector resumes after the highest offset written per partition, so the position and the
data are written in one insert and can never disagree. Rebuilding = drop + read from zero.
Rows are deduplicated by event id (ReplacingMergeTree), so a repeated event counts once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from infra.clickhouse import EVENTS_DDL, ClickHouse
from infra.eventlog import PollPacer, make_consumer
from infra.settings import KafkaSettings
from schemas.events import (
    CommitmentReported,
    CommitmentRequested,
    Event,
    InstanceReceived,
    InstanceRejected,
    InstanceStored,
    MppsCompleted,
    MppsCreated,
    MppsDiscontinued,
    MppsUpdated,
    MppsVerified,
    WorklistItemCancelled,
    WorklistItemScheduled,
    WorklistItemUpdated,
    parse_event,
)

log = logging.getLogger(__name__)

COLUMNS = [
    "event_id", "type", "version", "occurred_at", "study_instance_uid", "series_instance_uid",
    "sop_instance_uid", "patient_id", "via", "calling_ae", "client", "size", "sha256",
    "log_partition", "log_offset", "keep_rank", "body",
]  # fmt: skip


FIRST_WINS = 2**63


def event_row(record: ConsumerRecord[bytes, bytes]) -> list[Any] | None:
    """One audit row, or None for a record that is not a known event (kept out, logged)."""
    assert record.value is not None
    try:
        event = parse_event(record.value)
    except ValueError:
        log.warning("skipping undecodable record at %d/%d", record.partition, record.offset)
        return None
    study = series = sop = patient = via = calling = client = sha = ""
    size = 0
    if isinstance(event, InstanceReceived | InstanceRejected | InstanceStored):
        ref = event.instance
        study, series, sop = ref.study_instance_uid, ref.series_instance_uid, ref.sop_instance_uid
        sha, size = ref.sha256, ref.size
    if isinstance(event, InstanceReceived | InstanceRejected):
        via, calling, client = event.via, event.calling_ae, event.client
    if isinstance(event, InstanceReceived):
        patient = event.patient_id
    if not isinstance(event, InstanceReceived | InstanceRejected | InstanceStored):
        study, patient = event.study_instance_uid, event.patient_id
        sop, calling, client = _subject(event)
    return [
        event.event_id, event.type, event.version, event.occurred_at, study, series, sop,
        patient, via, calling, client, size, sha, record.partition, record.offset,
        FIRST_WINS - record.offset, record.value.decode(),
    ]  # fmt: skip


def _subject(event: Event) -> tuple[str, str, str]:
    """What an event that is not about one stored instance is about: the SOP instance column
    holds the MPPS instance or commitment transaction, so the audit trail can be searched by it."""
    if isinstance(event, MppsCreated | MppsUpdated | MppsCompleted | MppsDiscontinued):
        return event.mpps.sop_instance_uid, event.mpps.calling_ae, ""
    if isinstance(event, MppsVerified):
        return event.sop_instance_uid, "", ""
    if isinstance(event, CommitmentRequested | CommitmentReported):
        return event.transaction_uid, event.calling_ae, ""
    if isinstance(event, WorklistItemScheduled | WorklistItemUpdated):
        return "", "", event.client
    if isinstance(event, WorklistItemCancelled):
        return "", "", event.client
    return "", "", ""


class AuditProjector:
    """Consumes the whole log into `events`; resumable and rebuildable."""

    def __init__(self, clickhouse: ClickHouse, kafka: KafkaSettings) -> None:
        self.clickhouse = clickhouse
        self.kafka = kafka
        self._rebuild = asyncio.Event()
        self.rebuilds_completed = 0

    def ensure_table(self) -> None:
        self.clickhouse.command(EVENTS_DDL)

    def positions(self) -> dict[int, int]:
        rows = self.clickhouse.rows(
            "SELECT log_partition, max(log_offset) FROM events GROUP BY log_partition"
        )
        return {int(p): int(o) for p, o in rows}

    def request_rebuild(self) -> None:
        self._rebuild.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.ensure_table)
            # Our position lives in the table, so the group never commits: any group id works.
            consumer = make_consumer(self.kafka, group_id="pacs-audit-projector")
            try:
                await consumer.start()
                await self._consume(consumer, stop)
            except Exception:
                log.exception("audit projector failed; retrying")
                await asyncio.sleep(2)
            finally:
                await consumer.stop()
            if self._rebuild.is_set():
                self._rebuild.clear()
                await asyncio.to_thread(self.clickhouse.command, "DROP TABLE IF EXISTS events")
                self.rebuilds_completed += 1
                log.info("audit projection dropped; rebuilding from offset zero")

    async def _consume(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        positioned: set[TopicPartition] = set()
        pacer = PollPacer(self.kafka.consumer_poll_interval_seconds)
        while not stop.is_set() and not self._rebuild.is_set():
            await pacer.wait()
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            if not positioned and consumer.assignment():
                positions = await asyncio.to_thread(self.positions)
                for tp in consumer.assignment():
                    if tp.partition in positions:
                        consumer.seek(tp, positions[tp.partition] + 1)
                    else:
                        await consumer.seek_to_beginning(tp)
                positioned = set(consumer.assignment())
                continue  # what was fetched before seeking may be from the wrong place
            rows = [row for records in batches.values() for r in records if (row := event_row(r))]
            if rows:
                await asyncio.to_thread(self.clickhouse.insert, "events", rows, COLUMNS)
