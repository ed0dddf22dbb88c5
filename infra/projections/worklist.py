"""The Modality Worklist read model: the current version of every scheduled procedure.

One row per event that touched an item, versioned by its log offset (ReplacingMergeTree):
the newest version wins, a replayed record rewrites an identical row, and the highest
offset per partition is where the projection resumes. Worklist events are keyed by item,
so every version of one item sits on one partition and offsets order them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from infra.clickhouse import ClickHouse
from infra.projections.base import LogRecord
from schemas.events import WorklistItemCancelled, WorklistItemScheduled, WorklistItemUpdated
from schemas.worklist import WorklistItem, WorklistQuery

TABLE = "worklist_items"

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    item_id String,
    status LowCardinality(String),
    event_id UUID,
    patient_name String,
    patient_id String,
    accession_number String,
    study_instance_uid String,
    step_id String,
    station_ae_title String,
    modality LowCardinality(String),
    start_date Date32,
    body String,
    log_partition UInt32,
    log_offset UInt64
)
ENGINE = ReplacingMergeTree(log_offset)
ORDER BY item_id
"""

COLUMNS = [
    "item_id", "status", "event_id", "patient_name", "patient_id", "accession_number",
    "study_instance_uid", "step_id", "station_ae_title", "modality", "start_date", "body",
    "log_partition", "log_offset",
]  # fmt: skip


class WorklistProjection:
    """Implements `infra.projections.base.Projection` for `pacs.worklist.*` events."""

    name = TABLE
    tables: tuple[str, ...] = (TABLE,)

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse

    def ensure_tables(self) -> None:
        self.clickhouse.command(DDL)

    def positions(self) -> dict[int, int]:
        rows = self.clickhouse.rows(
            f"SELECT log_partition, max(log_offset) FROM {TABLE} GROUP BY log_partition"
        )
        return {int(p): int(o) for p, o in rows}

    def drop(self) -> None:
        self.clickhouse.command(f"DROP TABLE IF EXISTS {TABLE}")

    def apply(self, records: list[LogRecord]) -> None:
        rows: list[list[Any]] = []
        # A cancel carries only the id: it needs the version it withdraws, which may be
        # earlier in this very batch.
        latest: dict[str, WorklistItem] = {}
        for record in records:
            event = record.event
            if isinstance(event, WorklistItemScheduled | WorklistItemUpdated):
                latest[event.item.item_id] = event.item
                rows.append(_row(event.item, str(event.event_id), record))
            elif isinstance(event, WorklistItemCancelled):
                item = latest.get(event.item_id) or self._current(event.item_id)
                if item is None:
                    continue  # never scheduled: nothing to withdraw
                cancelled = item.model_copy(update={"status": "cancelled"})
                latest[event.item_id] = cancelled
                rows.append(_row(cancelled, str(event.event_id), record))
        if rows:
            self.clickhouse.insert(TABLE, rows, COLUMNS)

    def _current(self, item_id: str) -> WorklistItem | None:
        rows = self.clickhouse.rows(
            f"SELECT body FROM {TABLE} FINAL WHERE item_id = {{id:String}}", {"id": item_id}
        )
        return WorklistItem.model_validate_json(rows[0][0]) if rows else None

    # ---- queries (API process) -----------------------------------------------------

    def get(self, item_id: str) -> WorklistItem | None:
        """The current version of one item, cancelled or not."""
        return self._current(item_id)

    def applied(self, event_id: str) -> bool:
        """Whether the version written by this event is visible (read-your-writes)."""
        rows = self.clickhouse.rows(
            f"SELECT count() FROM {TABLE} WHERE event_id = {{id:UUID}}", {"id": event_id}
        )
        return bool(rows and rows[0][0])

    def find(self, query: WorklistQuery) -> list[WorklistItem]:
        """Items matching the coarse filters, by scheduled date and time."""
        where = ["1"]
        params: dict[str, Any] = {"limit": query.limit}
        exact = {
            "station_ae_title": query.station_ae_title,
            "modality": query.modality,
            "patient_id": query.patient_id,
            "accession_number": query.accession_number,
            "study_instance_uid": query.study_instance_uid,
            "step_id": query.step_id,
        }
        for column, value in exact.items():
            if value is not None:
                where.append(f"{column} = {{{column}:String}}")
                params[column] = value
        if query.date_from is not None:
            where.append("start_date >= {date_from:Date32}")
            params["date_from"] = query.date_from
        if query.date_to is not None:
            where.append("start_date <= {date_to:Date32}")
            params["date_to"] = query.date_to
        if not query.include_cancelled:
            where.append("status = 'scheduled'")
        rows = self.clickhouse.rows(
            f"SELECT body FROM {TABLE} FINAL WHERE {' AND '.join(where)}"
            " ORDER BY start_date, item_id LIMIT {limit:UInt32}",
            params,
        )
        items = [WorklistItem.model_validate_json(body) for (body,) in rows]
        return sorted(items, key=_schedule_order)


def _schedule_order(item: WorklistItem) -> tuple[dt.date, dt.time, str]:
    step = item.scheduled_step
    return step.start_date, step.start_time or dt.time(0), item.item_id


def _row(item: WorklistItem, event_id: str, record: LogRecord) -> list[Any]:
    step = item.scheduled_step
    return [
        item.item_id, item.status, event_id, item.patient_name, item.patient_id,
        item.accession_number, item.study_instance_uid, step.step_id, step.station_ae_title,
        step.modality, step.start_date, json.dumps(item.model_dump(mode="json")),
        record.partition, record.offset,
    ]  # fmt: skip
