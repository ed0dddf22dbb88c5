"""The Modality Worklist read model: every scheduled procedure and the state of its step.

Two tables of facts, each versioned by log offset within its own aggregate
(ReplacingMergeTree): `worklist_items` holds one row per event that touched an item
(worklist events are keyed by item, so every version of one item sits on one partition and
offsets order them), `worklist_mpps` one row per Modality Performed Procedure Step with its
status and the scheduled steps it references (MPPS events are keyed by MPPS instance, so
likewise). A replayed record rewrites an identical row.

The ScheduledProcedureStepStatus of an item is never stored: it is joined from both tables
when the worklist is read (`_SELECT`). An MPPS and its item usually sit on different
partitions, and are read in no particular order from each other (a rebuild may see the
MPPS before the item it performed); a state computed at query time does not depend on that
order, and a PUT of the item cannot overwrite what was performed.

An MPPS references an item through a ScheduledStepAttributesSequence entry:
- its StudyInstanceUID equals the item's, or, when it has none, its AccessionNumber does
  (a ScheduledProcedureStepID alone is reused across orders, so it never links on its own);
- and every other key the entry carries (AccessionNumber, RequestedProcedureID,
  ScheduledProcedureStepID) equals the item's, so two steps scheduled under one study stay
  apart, and a modality that names another step does not complete this one.
Of the MPPS referencing an item: any COMPLETED makes it COMPLETED; else any IN PROGRESS,
STARTED; else (all DISCONTINUED) DISCONTINUED; none, SCHEDULED.

`worklist_positions` is written after both, per partition the offset of the last worklist
or MPPS record applied: where the projection resumes. (A crash between the inserts replays
the batch, which rewrites identical rows.)
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from schemas.events import (
    MppsCompleted,
    MppsCreated,
    MppsDiscontinued,
    MppsUpdated,
    WorklistItemCancelled,
    WorklistItemScheduled,
    WorklistItemUpdated,
)
from schemas.worklist import WorklistItem, WorklistItemView, WorklistQuery

TABLE = "worklist_items"
MPPS_TABLE = "worklist_mpps"
POSITIONS_TABLE = "worklist_positions"

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

# One row per MPPS instance; the ref_* arrays are its ScheduledStepAttributesSequence.
MPPS_DDL = f"""
CREATE TABLE IF NOT EXISTS {MPPS_TABLE} (
    sop_instance_uid String,
    status LowCardinality(String),
    changed_at DateTime64(3, 'UTC'),
    event_id UUID,
    ref_study_instance_uid Array(String),
    ref_accession_number Array(String),
    ref_requested_procedure_id Array(String),
    ref_step_id Array(String),
    log_partition UInt32,
    log_offset UInt64
)
ENGINE = ReplacingMergeTree(log_offset)
ORDER BY sop_instance_uid
"""

MPPS_COLUMNS = [
    "sop_instance_uid", "status", "changed_at", "event_id", "ref_study_instance_uid",
    "ref_accession_number", "ref_requested_procedure_id", "ref_step_id", "log_partition",
    "log_offset",
]  # fmt: skip

POSITIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} (
    log_partition UInt32,
    log_offset UInt64
)
ENGINE = ReplacingMergeTree(log_offset)
ORDER BY log_partition
"""

# The items that pass `{where}`, each with the state of its step (see the module docstring).
# `anchor` is how an MPPS entry and an item meet: S:<StudyInstanceUID>, else A:<Accession>.
_SELECT = f"""
WITH
    items AS (
        SELECT item_id, body, start_date, study_instance_uid, accession_number, step_id,
               JSONExtractString(body, 'requested_procedure_id') AS requested_procedure_id
        FROM {TABLE} FINAL WHERE {{where}}
    ),
    refs AS (
        SELECT sop_instance_uid, status, changed_at,
               r.1 AS study, r.2 AS accession, r.3 AS requested_procedure, r.4 AS step,
               if(study != '', 'S:' || study, 'A:' || accession) AS anchor
        FROM {MPPS_TABLE} FINAL
        ARRAY JOIN arrayZip(ref_study_instance_uid, ref_accession_number,
                            ref_requested_procedure_id, ref_step_id) AS r
        WHERE study != '' OR accession != ''
    ),
    states AS (
        SELECT k.item_id AS item_id,
               countIf(m.status = 'COMPLETED') > 0 AS completed,
               countIf(m.status = 'IN PROGRESS') > 0 AS in_progress,
               multiIf(completed, 'COMPLETED', in_progress, 'STARTED', 'DISCONTINUED')
                   AS step_status,
               multiIf(completed, maxIf(m.changed_at, m.status = 'COMPLETED'),
                       in_progress, maxIf(m.changed_at, m.status = 'IN PROGRESS'),
                       max(m.changed_at)) AS since,
               arraySort(groupUniqArray(m.sop_instance_uid)) AS performed
        FROM (
            SELECT item_id, accession_number, step_id, requested_procedure_id,
                   arrayJoin(['S:' || study_instance_uid, 'A:' || accession_number]) AS anchor
            FROM items
        ) AS k
        INNER JOIN refs AS m ON k.anchor = m.anchor
        WHERE (m.accession = '' OR m.accession = k.accession_number)
          AND (m.requested_procedure = '' OR m.requested_procedure = k.requested_procedure_id)
          AND (m.step = '' OR m.step = k.step_id)
        GROUP BY k.item_id
    )
SELECT i.body, if(s.step_status = '', 'SCHEDULED', s.step_status) AS state,
       s.since, s.performed
FROM items AS i LEFT JOIN states AS s ON i.item_id = s.item_id
WHERE {{state}}
ORDER BY i.start_date, i.item_id
LIMIT {{{{limit:UInt32}}}}
"""


class WorklistProjection:
    """Implements `infra.readmodels.base.Projection` for `pacs.worklist.*` events."""

    name = TABLE
    tables: tuple[str, ...] = (TABLE, MPPS_TABLE, POSITIONS_TABLE)

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse

    def ensure_tables(self) -> None:
        self.clickhouse.command(DDL)
        self.clickhouse.command(MPPS_DDL)
        # A worklist from before MPPS were projected has no positions yet: it is read again
        # from offset zero, which fills worklist_mpps and rewrites identical item rows.
        self.clickhouse.command(POSITIONS_DDL)

    def positions(self) -> dict[int, int]:
        rows = self.clickhouse.rows(
            f"SELECT log_partition, max(log_offset) FROM {POSITIONS_TABLE} GROUP BY log_partition"
        )
        return {int(p): int(o) for p, o in rows}

    def drop(self) -> None:
        for table in self.tables:
            self.clickhouse.command(f"DROP TABLE IF EXISTS {table}")

    def apply(self, records: list[LogRecord]) -> None:
        rows: list[list[Any]] = []
        mpps_rows: list[list[Any]] = []
        last: dict[int, int] = {}
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
            elif isinstance(event, MppsCreated | MppsUpdated | MppsCompleted | MppsDiscontinued):
                mpps_rows.append(_mpps_row(event, record))
            else:
                continue
            last[record.partition] = max(last.get(record.partition, -1), record.offset)
        if rows:
            self.clickhouse.insert(TABLE, rows, COLUMNS)
        if mpps_rows:
            self.clickhouse.insert(MPPS_TABLE, mpps_rows, MPPS_COLUMNS)
        if last:
            self.clickhouse.insert(
                POSITIONS_TABLE, [[p, o] for p, o in last.items()], ["log_partition", "log_offset"]
            )

    def _current(self, item_id: str) -> WorklistItem | None:
        rows = self.clickhouse.rows(
            f"SELECT body FROM {TABLE} FINAL WHERE item_id = {{id:String}}", {"id": item_id}
        )
        return WorklistItem.model_validate_json(rows[0][0]) if rows else None

    # ---- queries (API process) -----------------------------------------------------

    def get(self, item_id: str) -> WorklistItemView | None:
        """The current version of one item and the state of its step, whatever they are."""
        views = self._select("item_id = {item_id:String}", "1", {"item_id": item_id, "limit": 1})
        return views[0] if views else None

    def applied(self, event_id: str) -> bool:
        """Whether the version written by this event is visible (read-your-writes)."""
        rows = self.clickhouse.rows(
            f"SELECT count() FROM {TABLE} WHERE event_id = {{id:UUID}}", {"id": event_id}
        )
        return bool(rows and rows[0][0])

    def find(self, query: WorklistQuery) -> list[WorklistItemView]:
        """Items matching the coarse filters, by scheduled date and time; which step states
        are included is said by `WorklistQuery`."""
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
        if query.step_status is not None:
            state = "state = {step_status:String}"
            params["step_status"] = query.step_status
        elif query.include_finished:
            state = "1"
        elif query.finished_since is not None:
            state = "state IN ('SCHEDULED', 'STARTED') OR s.since >= {finished_since:DateTime64(3)}"
            params["finished_since"] = query.finished_since
        else:
            state = "state IN ('SCHEDULED', 'STARTED')"
        return sorted(self._select(" AND ".join(where), state, params), key=_schedule_order)

    def _select(self, where: str, state: str, params: dict[str, Any]) -> list[WorklistItemView]:
        rows = self.clickhouse.rows(_SELECT.format(where=where, state=state), params)
        return [
            WorklistItemView.model_validate_json(body).model_copy(
                update={
                    "step_status": status,
                    "step_status_since": _utc(since) if status != "SCHEDULED" else None,
                    "performed_procedure_steps": list(performed),
                }
            )
            for body, status, since, performed in rows
        ]


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


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


def _mpps_row(
    event: MppsCreated | MppsUpdated | MppsCompleted | MppsDiscontinued, record: LogRecord
) -> list[Any]:
    steps = event.mpps.scheduled_steps
    return [
        event.mpps.sop_instance_uid, event.mpps.status, event.occurred_at, str(event.event_id),
        [s.study_instance_uid for s in steps], [s.accession_number for s in steps],
        [s.requested_procedure_id for s in steps], [s.scheduled_procedure_step_id for s in steps],
        record.partition, record.offset,
    ]  # fmt: skip
