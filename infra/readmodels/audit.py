"""The `events` read model: every event on the log (the audit trail), and its queries.

The table records, row by row, the log partition and offset it came from; on start the
projector resumes after the highest offset written per partition, so the position and the
data are written in one insert and can never disagree. Rebuilding = drop + read from zero.
Rows are deduplicated by event id (ReplacingMergeTree), so a repeated event counts once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from schemas.audit import AccessEntry, AccessPage, AuditEvent, Change, ChangePage
from schemas.events import (
    AccessAudited,
    ApiKeyCreated,
    CommitmentReported,
    CommitmentRequested,
    DeletionEvent,
    Event,
    FixityChecked,
    InstanceDamaged,
    InstanceMigrated,
    InstanceReceived,
    InstanceRejected,
    InstancesDeleted,
    InstanceStored,
    MppsCompleted,
    MppsCreated,
    MppsDiscontinued,
    MppsUpdated,
    MppsVerified,
    NodeHealthEvent,
    PrefetchCompleted,
    PrefetchRuleDeleted,
    PrefetchRuleSaved,
    RouteEvent,
    RoutingRuleEvent,
    SecurityEvent,
    StorageRuleEvent,
    StudyDeidentified,
    StudyLabelsSet,
    StudyPatientUpdated,
    SyncCompleted,
    SyncConflictFound,
    SyncRelationDeleted,
    SyncRelationSaved,
    UserSaved,
    WorklistItemCancelled,
    WorklistItemScheduled,
    WorklistItemUpdated,
    event_key,
)

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS events (
    event_id UUID,
    type LowCardinality(String),
    version UInt16,
    occurred_at DateTime64(3, 'UTC'),
    study_instance_uid String,
    series_instance_uid String,
    sop_instance_uid String,
    patient_id String,
    via LowCardinality(String),
    calling_ae String,
    client String,
    size UInt64,
    sha256 String,
    log_partition UInt32,
    log_offset UInt64,
    -- A repeated announcement (same event id, later offset) must not replace the first,
    -- which carries who sent the instance: the row with the highest rank is kept.
    keep_rank UInt64,
    body String
)
ENGINE = ReplacingMergeTree(keep_rank)
ORDER BY (study_instance_uid, event_id)
"""

ACCESS_DDL = """
CREATE TABLE IF NOT EXISTS audit_access (
    event_id UUID,
    n UInt32,
    occurred_at DateTime64(3, 'UTC'),
    action LowCardinality(String),
    outcome LowCardinality(String),
    actor String,
    via LowCardinality(String),
    address String,
    calling_ae String,
    patient_id String,
    study_instance_uid String,
    series_instance_uid String,
    sop_instance_uid String,
    detail String
)
ENGINE = ReplacingMergeTree
ORDER BY (event_id, n)
"""
ACCESS_COLUMNS = [
    "event_id", "n", "occurred_at", "action", "outcome", "actor", "via", "address",
    "calling_ae", "patient_id", "study_instance_uid", "series_instance_uid",
    "sop_instance_uid", "detail",
]  # fmt: skip

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
    if isinstance(event, AccessAudited):
        client = event.source  # the entries themselves go to audit_access
    elif isinstance(event, SecurityEvent):
        # About a user or key, not a patient: the subject in the SOP column, the actor as client.
        sop, client = event_key(event), event.actor
    elif isinstance(event, StudyLabelsSet):
        study, client = event.study_instance_uid, event.actor
    elif isinstance(event, NodeHealthEvent):
        sop = event_key(event)  # about a node, found by it; the schedule is the actor
    elif isinstance(
        event, RoutingRuleEvent | PrefetchRuleSaved | PrefetchRuleDeleted | StorageRuleEvent
    ):
        sop, client = event_key(event), event.actor
    elif isinstance(event, PrefetchCompleted):
        patient, sop, client = event.patient_id, event.workflow_id, event.rule
    elif isinstance(event, SyncRelationSaved | SyncRelationDeleted):
        sop, client = event_key(event), event.actor
    elif isinstance(event, SyncCompleted):
        sop, client = event.workflow_id, event.relation  # the history of a relation, by name
    elif isinstance(event, SyncConflictFound):
        found = event.conflict
        study, series, sop = (found.study_instance_uid, found.series_instance_uid,
                              found.sop_instance_uid)  # fmt: skip
        client = event.relation
    elif isinstance(event, RouteEvent):
        study, client = event.study_instance_uid, event.destination
    elif isinstance(event, InstanceDamaged):
        damage = event.problem
        study, series, sop = (damage.study_instance_uid, damage.series_instance_uid,
                              damage.sop_instance_uid)  # fmt: skip
        sha, client = damage.found_sha256, event.workflow_id
    elif isinstance(event, FixityChecked):
        study, sop = event.study_instance_uid, event.workflow_id  # the run, found by its id
    elif isinstance(event, DeletionEvent):
        scope = event.scope
        study, series = scope.study_instance_uid, scope.series_instance_uid
        # One instance in the SOP column; several (a rejection note's) are in the body.
        sop = scope.sop_instance_uids[0] if len(scope.sop_instance_uids) == 1 else ""
        if isinstance(event, InstancesDeleted):
            patient, client = event.patient_id, event.actor
    elif isinstance(event, StudyPatientUpdated):
        study, patient, client = event.study_instance_uid, event.patient_id, event.actor
    elif isinstance(event, InstanceMigrated):
        study, series, sop = (event.study_instance_uid, event.series_instance_uid,
                              event.sop_instance_uid)  # fmt: skip
        sha, size, client = event.sha256, event.size, event.migration_id
    elif not isinstance(event, InstanceReceived | InstanceRejected | InstanceStored):
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
    if isinstance(event, StudyDeidentified):
        return event.job_id, "", event.actor
    return "", "", ""


def _audit_body(event: Event) -> str:
    """The event as the audit trail keeps it: without the copied header (the catalog has it)
    and without password hashes or key digests (auditors read this table)."""
    exclude: Any = None
    if isinstance(event, InstanceReceived):
        exclude = {"metadata"}
    elif isinstance(event, UserSaved):
        exclude = {"user": {"password_hash"}}
    elif isinstance(event, ApiKeyCreated):
        exclude = {"key": {"secret_sha256"}}
    elif isinstance(event, AccessAudited):
        exclude = {"entries"}
    return event.model_dump_json(exclude=exclude)


class AuditProjection:
    """Every event on the log, one row each: the audit trail."""

    name = "events"
    tables: tuple[str, ...] = ("events", "audit_access")

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse

    def ensure_tables(self) -> None:
        self.clickhouse.command(EVENTS_DDL)
        self.clickhouse.command(ACCESS_DDL)

    def positions(self) -> dict[int, int]:
        rows = self.clickhouse.rows(
            "SELECT log_partition, max(log_offset) FROM events GROUP BY log_partition"
        )
        return {int(p): int(o) for p, o in rows}

    def apply(self, records: list[LogRecord]) -> None:
        # Accesses first: `events` holds the position, and a replay rewrites identical rows.
        access = [
            [event.event_id, n, *(getattr(entry, c) for c in ACCESS_COLUMNS[2:])]
            for record in records
            if isinstance(event := record.event, AccessAudited)
            for n, entry in enumerate(event.entries)
        ]
        if access:
            self.clickhouse.insert("audit_access", access, ACCESS_COLUMNS)
        rows = [event_row(record) for record in records]
        if rows:
            self.clickhouse.insert("events", rows, COLUMNS)

    def drop(self) -> None:
        for table in self.tables:
            self.clickhouse.command(f"DROP TABLE IF EXISTS {table}")


class AuditTrail:
    """The read side of the `events` and `audit_access` tables: the audit trail, the change
    feed and who accessed what (blocking)."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse

    def events(
        self, study_instance_uid: str | None, event_type: str | None, limit: int
    ) -> list[AuditEvent]:
        """Events, oldest first, filtered by study and/or type."""
        params: dict[str, object] = {"limit": limit}
        where = _equal(params, study_instance_uid=study_instance_uid, type=event_type)
        sql = (
            "SELECT toString(event_id), type, occurred_at, study_instance_uid,"
            " series_instance_uid, sop_instance_uid, via, calling_ae, client, size, sha256"
            f" FROM events FINAL WHERE {' AND '.join(where)}"
            " ORDER BY occurred_at, event_id LIMIT {limit:UInt32}"
        )
        fields = list(AuditEvent.model_fields)
        rows = self.clickhouse.rows(sql, params)
        return [AuditEvent(**dict(zip(fields, row, strict=True))) for row in rows]

    def changes(
        self,
        since: int,
        limit: int,
        study_instance_uid: str | None = None,
        sop_instance_uid: str | None = None,
    ) -> ChangePage:
        """Events after log offset `since`, optionally for one study or one instance."""
        # One row more than asked tells whether the page is the last.
        params: dict[str, object] = {"since": since, "limit": limit + 1}
        where = [
            "log_offset > {since:Int64}",
            *_equal(
                params, study_instance_uid=study_instance_uid, sop_instance_uid=sop_instance_uid
            ),
        ]
        sql = (
            "SELECT log_offset, log_partition, type, occurred_at, study_instance_uid,"
            " series_instance_uid, sop_instance_uid FROM events FINAL"
            f" WHERE {' AND '.join(where)} ORDER BY log_offset, log_partition"
            " LIMIT {limit:UInt32}"
        )
        rows = self.clickhouse.rows(sql, params)
        fields = list(Change.model_fields)
        changes = [Change(**dict(zip(fields, row, strict=True))) for row in rows[:limit]]
        return ChangePage(
            changes=changes,
            last=changes[-1].seq if changes else since,
            done=len(rows) <= limit,
        )

    def accesses(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        **filters: str | None,
    ) -> AccessPage:
        """Accesses, newest first, filtered by time range and by exact column values
        (actor, patient_id, study_instance_uid, action, outcome, calling_ae)."""
        params: dict[str, object] = {"limit": limit + 1, "offset": offset}
        patient = filters.pop("patient_id", None)
        where = _access_query(params, since, until, **filters)
        if patient:
            # A WADO of a study names only its UIDs: the catalog says whose study it is.
            # (SQL only: the catalog's table, not its code.)
            params["patient"] = patient
            where.append(
                "(patient_id = {patient:String} OR study_instance_uid IN (SELECT"
                " study_instance_uid FROM studies FINAL WHERE patient_id = {patient:String}))"
            )
        fields = ACCESS_COLUMNS[2:]
        sql = (
            f"SELECT {', '.join(fields)} FROM audit_access FINAL"
            f" WHERE {' AND '.join(where)}"
            " ORDER BY occurred_at DESC, event_id, n LIMIT {limit:UInt32} OFFSET {offset:UInt32}"
        )
        rows = self.clickhouse.rows(sql, params)
        entries = [AccessEntry(**dict(zip(fields, row, strict=True))) for row in rows[:limit]]
        return AccessPage(entries=entries, offset=offset + len(entries), done=len(rows) <= limit)


def _access_query(
    params: dict[str, object],
    since: datetime | None,
    until: datetime | None,
    **columns: str | None,
) -> list[str]:
    where = _equal(params, **columns)
    if since is not None:
        where.append("occurred_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until is not None:
        where.append("occurred_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    return where


def _equal(params: dict[str, object], **columns: str | None) -> list[str]:
    """`column = value` conditions for the columns given a value, bound into `params`."""
    where = ["1"]
    for column, value in columns.items():
        if value:
            where.append(f"{column} = {{{column}:String}}")
            params[column] = value
    return where
