"""Projects every event on the log into the ClickHouse `events` table (the audit trail).

The table records, row by row, the log partition and offset it came from; on start the
projector resumes after the highest offset written per partition, so the position and the
data are written in one insert and can never disagree. Rebuilding = drop + read from zero.
Rows are deduplicated by event id (ReplacingMergeTree), so a repeated event counts once.
"""

from __future__ import annotations

from typing import Any

from infra.clickhouse import EVENTS_DDL, ClickHouse
from infra.readmodels.base import LogRecord
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
)

COLUMNS = [
    "event_id", "type", "version", "occurred_at", "study_instance_uid", "series_instance_uid",
    "sop_instance_uid", "patient_id", "via", "calling_ae", "client", "size", "sha256",
    "log_partition", "log_offset", "keep_rank", "body",
]  # fmt: skip


FIRST_WINS = 2**63


def event_row(record: LogRecord) -> list[Any]:
    """One audit row."""
    event = record.event
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
        FIRST_WINS - record.offset, _audit_body(event),
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
    if isinstance(event, WorklistItemScheduled | WorklistItemUpdated | WorklistItemCancelled):
        return "", "", event.client
    return "", "", ""


def _audit_body(event: Event) -> str:
    """The event as the audit trail keeps it: without the copied header (the catalog has it)."""
    return event.model_dump_json(
        exclude={"metadata"} if isinstance(event, InstanceReceived) else None
    )


class AuditProjection:
    """Every event on the log, one row each: the audit trail."""

    name = "events"
    tables: tuple[str, ...] = ("events",)

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse

    def ensure_tables(self) -> None:
        self.clickhouse.command(EVENTS_DDL)

    def positions(self) -> dict[int, int]:
        rows = self.clickhouse.rows(
            "SELECT log_partition, max(log_offset) FROM events GROUP BY log_partition"
        )
        return {int(p): int(o) for p, o in rows}

    def apply(self, records: list[LogRecord]) -> None:
        rows = [event_row(record) for record in records]
        if rows:
            self.clickhouse.insert("events", rows, COLUMNS)

    def drop(self) -> None:
        self.clickhouse.command("DROP TABLE IF EXISTS events")
