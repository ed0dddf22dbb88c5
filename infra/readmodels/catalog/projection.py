"""CatalogProjection: `pacs.instance.received` events into the patient/study/series/instance
tables, and each instance's DICOM JSON into `instance_metadata`.

A batch is applied in three steps: instance rows (the facts), then the series, study and
patient rows of everything the batch touched, recomputed inside ClickHouse from the
instance table (so counts are right however the log was cut into batches, and a replayed
event cannot double-count), then the log position. A crash between steps replays the batch,
which rewrites the same rows.

A deletion (`pacs.instances.deleted`) removes the instance and metadata rows it covers
(ClickHouse lightweight DELETE, all versions) and the series, study and patient rows of
its study, which are then recomputed from the instances left, as after any batch. Rows
are applied in log order around it, so an instance received again after its deletion is
listed again, and a replayed batch ends in the same state.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.catalog.attributes import COPIED, LISTS, TABLES, Level, first_value
from infra.readmodels.catalog.corrections import (
    CORRECTION_COLUMNS,
    CORRECTIONS_DDL,
    PatientCorrections,
    corrected_metadata,
    rewrite_study,
)
from infra.readmodels.catalog.deletions import DELETION_COLUMNS, DELETIONS_DDL, PendingDeletions
from infra.readmodels.catalog.resident import ResidentCatalog
from infra.readmodels.catalog.tables import (
    KEYS,
    LABELS_DDL,
    METADATA_DDL,
    POSITIONS_DDL,
    SKIP_INDEXES,
    columns,
    level_attributes,
    skip_index,
    table_ddl,
)
from infra.storage.metadata import MetadataStore
from schemas.events import (
    InstanceReceived,
    InstancesDeleted,
    InstancesPurged,
    StudyLabelsSet,
    StudyPatientUpdated,
)
from schemas.lifecycle import DeletionScope
from schemas.patients import PATIENT_ATTRIBUTES

log = logging.getLogger(__name__)

METADATA_COLUMNS = [
    "study_instance_uid", "series_instance_uid", "sop_instance_uid", "instance_number",
    "metadata", "log_partition", "log_offset",
]  # fmt: skip
LABEL_COLUMNS = ["study_instance_uid", "labels", "log_partition", "log_offset"]
ALL_TABLES = (
    *TABLES.values(), "instance_metadata", "study_labels", "catalog_deletions",
    "patient_corrections", "catalog_positions",
)  # fmt: skip
# The catalog column of each patient attribute a correction may change.
PATIENT_COLUMNS = {a.keyword: a.column for a in COPIED if a.keyword in PATIENT_ATTRIBUTES}


def event_metadata(event: InstanceReceived, store: MetadataStore | None = None) -> dict[str, Any]:
    """The instance's DICOM JSON, from the event or from where the event says it is stored;
    for events older than the `metadata` field, what they say."""
    if event.metadata is not None:
        return event.metadata
    if event.metadata_ref is not None:
        if store is None:
            raise RuntimeError("an event refers to stored metadata, and no store was given")
        return store.get(event.metadata_ref)
    ref = event.instance

    def ui(value: str) -> dict[str, Any]:
        return {"vr": "UI", "Value": [value]}

    minimal: dict[str, Any] = {
        "00080016": ui(ref.sop_class_uid),
        "00080018": ui(ref.sop_instance_uid),
        "0020000D": ui(ref.study_instance_uid),
        "0020000E": ui(ref.series_instance_uid),
        "00083002": ui(event.transfer_syntax_uid),
    }
    if event.patient_id:
        minimal["00100020"] = {"vr": "LO", "Value": [event.patient_id]}
    if event.modality:
        minimal["00080060"] = {"vr": "CS", "Value": [event.modality]}
    return minimal


def _instance_row(
    record: LogRecord,
    event: InstanceReceived,
    store: MetadataStore | None,
    corrected: dict[str, str],
) -> tuple[list[Any], list[Any]]:
    metadata = event_metadata(event, store)
    if corrected:
        # Received after its study's patient was corrected: listed with the new values.
        metadata = corrected_metadata(metadata, corrected)
    ref = event.instance
    values: dict[str, Any] = {}
    for attribute in COPIED:
        value = first_value(metadata, attribute)
        values[attribute.column] = value if value is not None or attribute.numeric else ""
    # The event's identity wins over what the header JSON says (it was validated on ingest).
    values["study_instance_uid"] = ref.study_instance_uid
    values["series_instance_uid"] = ref.series_instance_uid
    values["sop_instance_uid"] = ref.sop_instance_uid
    values["sop_class_uid"] = ref.sop_class_uid
    values["available_transfer_syntax_uid"] = event.transfer_syntax_uid
    occurred: datetime = event.occurred_at
    row = [values[a.column] for a in COPIED] + [
        ref.size, ref.sha256, occurred, event.calling_ae, record.partition, record.offset,
    ]  # fmt: skip
    meta_row = [
        ref.study_instance_uid, ref.series_instance_uid, ref.sop_instance_uid,
        values["instance_number"], json.dumps(metadata, separators=(",", ":")),
        record.partition, record.offset,
    ]  # fmt: skip
    return row, meta_row


def _aggregate_sql(level: Level) -> str:
    """INSERT … SELECT recomputing one level's rows for the keys a batch touched.

    Series and studies come from the instance table (narrowed by its primary key); patients
    come from the study rows just recomputed, because the instance table is not ordered by
    patient and scanning it costs ~180 ms a batch at 1M instances (the study table is
    ~200 times smaller)."""
    if level is Level.PATIENT:
        return _patient_sql()
    keys = KEYS[level]
    select: list[str] = []
    for attribute in level_attributes(level):
        column = attribute.column
        if column in keys:
            select.append(column)
        elif attribute.origin == "copied":
            # The newest instance's value: a corrected header (re-sent) wins.
            select.append(f"argMax({column}, log_offset) AS agg_{column}")
        elif attribute.keyword in LISTS:
            source = "modality" if attribute.keyword == "ModalitiesInStudy" else "sop_class_uid"
            select.append(
                f"arraySort(arrayFilter(x -> x != '', groupUniqArray({source}))) AS agg_{column}"
            )
        elif column.endswith("_related_instances"):
            select.append(f"count() AS agg_{column}")
        elif column.endswith("_related_series"):
            select.append(f"uniqExact(series_instance_uid) AS agg_{column}")
        else:
            raise AssertionError(f"no aggregate for {attribute.keyword}")
    return _insert_select(level, select, "instances", "study_instance_uid")


def _patient_sql() -> str:
    select: list[str] = []
    for attribute in level_attributes(Level.PATIENT):
        column = attribute.column
        if column == "patient_id":
            select.append(column)
        elif attribute.origin == "copied":
            # Each study row holds its newest instance's value: the newest of those wins.
            select.append(f"argMax({column}, log_offset) AS agg_{column}")
        elif column.endswith("_related_studies"):
            select.append(f"count() AS agg_{column}")
        elif column.endswith("_related_series"):
            select.append(f"sum(number_of_study_related_series) AS agg_{column}")
        elif column.endswith("_related_instances"):
            select.append(f"sum(number_of_study_related_instances) AS agg_{column}")
        else:
            raise AssertionError(f"no aggregate for {attribute.keyword}")
    return _insert_select(Level.PATIENT, select, "studies", "patient_id")


def _insert_select(level: Level, select: list[str], source: str, narrow: str) -> str:
    # Aliases must not reuse column names: argMax(x, log_offset) would see the alias.
    select = [*select, "max(log_partition) AS agg_partition", "max(log_offset) AS agg_offset"]
    names = [name for name, _ in columns(level)]
    return (
        f"INSERT INTO {TABLES[level]} ({', '.join(names)}) "
        f"SELECT {', '.join(select)} FROM {source} FINAL "
        f"WHERE {narrow} IN {{keys:Array(String)}} GROUP BY {', '.join(KEYS[level])}"
    )


class CatalogProjection:
    """The Q/R and DICOMweb read models; see the module docstring for how a batch applies."""

    name = "catalog"
    tables: tuple[str, ...] = ALL_TABLES

    def __init__(
        self,
        clickhouse: ClickHouse,
        resident: ResidentCatalog | None = None,
        metadata: MetadataStore | None = None,
        pending: PendingDeletions | None = None,
        corrections: PatientCorrections | None = None,
    ) -> None:
        self.clickhouse = clickhouse
        # Patient corrections per study, which retrieves coerce into what they send.
        self.corrections = corrections if corrections is not None else PatientCorrections()
        # Deletions not purged yet, which retrieves by UID consult (kept equal here).
        self.pending = pending
        # Headers too large for their events are read back from here.
        self.metadata = metadata
        # The in-memory copy of the upper levels that searches read; kept equal here.
        self.resident = resident
        self._instance_columns = [name for name, _ in columns(Level.IMAGE)]
        self._patient_column = self._instance_columns.index("patient_id")
        self._aggregates = {
            level: _aggregate_sql(level) for level in (Level.SERIES, Level.STUDY, Level.PATIENT)
        }

    def ensure_tables(self) -> None:
        if missing := self._missing_columns():
            # A catalog made by an older version: rebuilt from the log (the runner starts
            # from the positions, gone with the tables), so no row lacks the new columns.
            log.warning(
                "the catalog lacks %s: rebuilding it from the event log", ", ".join(missing)
            )
            self.drop()
        for level, table in TABLES.items():
            self.clickhouse.command(table_ddl(level, table))
            self._add_skip_indexes(level, table)
        self.clickhouse.command(METADATA_DDL)
        self.clickhouse.command(LABELS_DDL)
        self.clickhouse.command(DELETIONS_DDL)
        self.clickhouse.command(CORRECTIONS_DDL)
        self.clickhouse.command(POSITIONS_DDL)
        self.corrections.load(self.clickhouse)
        if self.resident is not None:
            self.resident.load()
        if self.pending is not None:
            self.pending.load(self.clickhouse)

    def _missing_columns(self) -> list[str]:
        present: dict[str, set[str]] = {}
        for table, column in self.clickhouse.rows(
            "SELECT table, name FROM system.columns WHERE database = currentDatabase()"
        ):
            present.setdefault(str(table), set()).add(str(column))
        return [
            f"{table}.{name}"
            for level, table in TABLES.items()
            if table in present
            for name, _ in columns(level)
            if name not in present[table]
        ]

    def _add_skip_indexes(self, level: Level, table: str) -> None:
        """Indexes a catalog made by an older version lacks: added, then built for the rows
        already there (a background mutation; searches are right meanwhile, only slower)."""
        present = {
            str(row[0])
            for row in self.clickhouse.rows(
                "SELECT name FROM system.data_skipping_indices"
                " WHERE database = currentDatabase() AND table = {t:String}",
                {"t": table},
            )
        }
        for column in SKIP_INDEXES.get(level, ()):
            name, definition = skip_index(column)
            if name not in present:
                self.clickhouse.command(f"ALTER TABLE {table} ADD INDEX {name} {definition}")
                self.clickhouse.command(f"ALTER TABLE {table} MATERIALIZE INDEX {name}")

    def positions(self) -> dict[int, int]:
        rows = self.clickhouse.rows(
            "SELECT log_partition, max(log_offset) FROM catalog_positions GROUP BY log_partition"
        )
        return {int(p): int(o) for p, o in rows}

    def apply(self, records: list[LogRecord]) -> None:
        if not records:
            return
        rows, meta_rows, labels, deletions = [], [], [], []
        studies: set[str] = set()
        patients: set[str] = set()
        for record in records:
            if isinstance(record.event, StudyLabelsSet):
                event = record.event
                labels.append(
                    [event.study_instance_uid, event.labels, record.partition, record.offset]
                )
            elif isinstance(record.event, InstanceReceived):
                study = record.event.instance.study_instance_uid
                corrected = self.corrections.of(study)
                row, meta_row = _instance_row(record, record.event, self.metadata, corrected)
                rows.append(row)
                meta_rows.append(meta_row)
                studies.add(record.event.instance.study_instance_uid)
                patients.add(row[self._patient_column])
            elif isinstance(record.event, InstancesDeleted):
                # What came before it in the log is written first, so it can be deleted.
                self._write(rows, meta_rows, studies, patients)
                rows, meta_rows = [], []
                studies, patients = set(), set()
                # Pending first: a retrieve by UID that finds the catalog no longer listing
                # the instance must find the deletion too, or it would serve its bytes.
                deletions.append(self._deletion_row(record, record.event, purged=False))
                self._delete(record.event.scope)
            elif isinstance(record.event, InstancesPurged):
                deletions.append(self._deletion_row(record, record.event, purged=True))
            elif isinstance(record.event, StudyPatientUpdated):
                # Like a deletion: it applies to what came before it in the log.
                self._write(rows, meta_rows, studies, patients)
                rows, meta_rows = [], []
                studies, patients = set(), set()
                self._correct(record, record.event)
        self._write(rows, meta_rows, studies, patients)
        if labels:
            self.clickhouse.insert("study_labels", labels, LABEL_COLUMNS)
        if deletions:
            self.clickhouse.insert("catalog_deletions", deletions, DELETION_COLUMNS)
        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = max(last.get(record.partition, -1), record.offset)
        self.clickhouse.insert(
            "catalog_positions", [[p, o] for p, o in last.items()], ["log_partition", "log_offset"]
        )

    def _deletion_row(
        self, record: LogRecord, event: InstancesDeleted | InstancesPurged, purged: bool
    ) -> list[Any]:
        scope = event.scope
        if self.pending is not None:
            if purged:
                self.pending.purged(scope.study_instance_uid, event.deletion_id)
            else:
                self.pending.add(event.deletion_id, scope)
        return [
            event.deletion_id, scope.study_instance_uid, scope.series_instance_uid,
            scope.sop_instance_uids, int(purged), record.partition, record.offset,
        ]  # fmt: skip

    def _write(
        self,
        rows: list[list[Any]],
        meta_rows: list[list[Any]],
        studies: set[str],
        patients: set[str],
    ) -> None:
        if not rows:
            return
        self.clickhouse.insert("instances", rows, self._instance_columns)
        self.clickhouse.insert("instance_metadata", meta_rows, METADATA_COLUMNS)
        self._aggregate(studies, patients)

    def _aggregate(self, studies: set[str], patients: set[str]) -> None:
        for level, sql in self._aggregates.items():
            keys = sorted(patients if level is Level.PATIENT else studies)
            self.clickhouse.command(sql, {"keys": keys})
        if self.resident is not None:
            self.resident.refresh(studies, patients)

    def _delete(self, scope: DeletionScope) -> None:
        study = scope.study_instance_uid
        params = {"study": study, "series": scope.series_instance_uid,
                  "sops": scope.sop_instance_uids}  # fmt: skip
        where = "study_instance_uid = {study:String}"
        if scope.series_instance_uid:
            where += " AND series_instance_uid = {series:String}"
        if scope.sop_instance_uids:
            where += " AND sop_instance_uid IN {sops:Array(String)}"
        patients = {
            str(r[0])
            for r in self.clickhouse.rows(
                "SELECT DISTINCT patient_id FROM studies FINAL"
                " WHERE study_instance_uid = {study:String}",
                params,
            )
        }
        for table in ("instances", "instance_metadata"):
            self.clickhouse.command(f"DELETE FROM {table} WHERE {where}", params)
        # The upper rows of the study (and its patients) go, and come back recomputed from
        # what is left: the aggregate writes nothing for a study with no instance left.
        for table in (TABLES[Level.SERIES], TABLES[Level.STUDY]):
            self.clickhouse.command(
                f"DELETE FROM {table} WHERE study_instance_uid = {{study:String}}", params
            )
        if patients:
            self.clickhouse.command(
                f"DELETE FROM {TABLES[Level.PATIENT]} WHERE patient_id IN {{p:Array(String)}}",
                {"p": sorted(patients)},
            )
        self._aggregate({study}, patients)

    def _correct(self, record: LogRecord, event: StudyPatientUpdated) -> None:
        study = event.study_instance_uid
        merged = self.corrections.merged(study, event.changes)
        position = (record.partition, record.offset)
        self.clickhouse.insert(
            "patient_corrections", [[study, json.dumps(merged), *position]], CORRECTION_COLUMNS
        )
        before = rewrite_study(self.clickhouse, study, event.changes, position, PATIENT_COLUMNS)
        # The patients the study left are recomputed from what they have left (none: gone).
        self.clickhouse.command(
            f"DELETE FROM {TABLES[Level.PATIENT]} WHERE patient_id IN {{p:Array(String)}}",
            {"p": sorted(before)},
        )
        self._aggregate({study}, before | {merged.get("PatientID", event.patient_id)})

    def drop(self) -> None:
        self.corrections.clear()
        for table in ALL_TABLES:
            self.clickhouse.command(f"DROP TABLE IF EXISTS {table}")
        if self.resident is not None:
            self.resident.clear()
        if self.pending is not None:
            self.pending.clear()
