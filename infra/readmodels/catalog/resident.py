"""The patient, study and series tables held in memory, for searches at those levels.

Why: every chDB query costs 5-13 ms whatever it reads (planning, FINAL over parts, the
Native result decoded in Python), while the searches a modality, workstation or viewer
sends all day — studies of a patient, by accession number, the series of a study — touch a
handful of rows. Held in memory they take tens of microseconds.

What keeps it equal to ClickHouse: rows are never computed here. They are read back from
the ClickHouse tables (all of them at start, then the keys each projected batch touched),
and the matching is the same parsed conditions (`matching.Conditions.tests`) that become
the SQL WHERE clause. A level with more rows than `max_rows` is not held at all (its
searches go to ClickHouse), so memory stays bounded on any archive size.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from infra.clickhouse import ClickHouse
from infra.readmodels.catalog.attributes import TABLES, Level
from infra.readmodels.catalog.tables import KEYS, RESULT_ORDER, level_attributes
from infra.readmodels.matching import Conditions

log = logging.getLogger(__name__)

RESIDENT_LEVELS = (Level.PATIENT, Level.STUDY, Level.SERIES)
# Columns with a value → keys index: what C-FIND and QIDO searches pin most often.
INDEXED = ("patient_id", "study_instance_uid", "accession_number", "series_instance_uid")
# Which column narrows a level's refresh after a projected batch.
REFRESH_BY = {
    Level.PATIENT: "patient_id",
    Level.STUDY: "study_instance_uid",
    Level.SERIES: "study_instance_uid",
}
DEFAULT_MAX_ROWS = 500_000  # about 650 MB per level
# A search no index narrows scans every row of its level in Python; past this many rows
# ClickHouse's parallel scan is the faster of the two.
FULL_SCAN_LIMIT = 50_000

Row = tuple[Any, ...]


class ResidentLevel:
    """One level's rows (all columns of its table), by key, with value → keys indexes."""

    def __init__(self, level: Level) -> None:
        self.level = level
        self.columns = [a.column for a in level_attributes(level)]
        self.position = {name: i for i, name in enumerate(self.columns)}
        self._key_at = [self.position[c] for c in KEYS[level]]
        self.indexed = [c for c in INDEXED if c in self.position]
        self.rows: dict[Row, Row] = {}
        self.index: dict[str, dict[Any, set[Row]]] = {c: {} for c in self.indexed}

    def key(self, row: Row) -> Row:
        return tuple(row[i] for i in self._key_at)

    def put(self, row: Row) -> None:
        key = self.key(row)
        old = self.rows.get(key)
        if old is not None:
            self._unindex(key, old)
        self.rows[key] = row
        for column in self.indexed:
            self.index[column].setdefault(row[self.position[column]], set()).add(key)

    def remove(self, key: Row) -> None:
        old = self.rows.pop(key, None)
        if old is not None:
            self._unindex(key, old)

    def _unindex(self, key: Row, row: Row) -> None:
        for column in self.indexed:
            value = row[self.position[column]]
            keys = self.index[column].get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.index[column][value]

    def candidates(self, conditions: Conditions, max_scan: int) -> list[Row] | None:
        """Rows that may match: from the narrowest index the conditions pin, else all
        (None if that would be more than `max_scan` rows)."""
        best: set[Row] | None = None
        for column, values in conditions.lookups.items():
            index = self.index.get(column)
            if index is None:
                continue
            keys: set[Row] = set()
            for value in values:
                keys |= index.get(value, set())
            if best is None or len(keys) < len(best):
                best = keys
        if best is None:
            return list(self.rows.values()) if len(self.rows) <= max_scan else None
        return [self.rows[key] for key in best]

    def sort_key(self, row: Row) -> tuple[Any, ...]:
        # ClickHouse sorts NULL last in ascending order.
        parts: list[Any] = []
        for column in RESULT_ORDER[self.level]:
            value = row[self.position[column]]
            parts += [value is None, 0 if value is None else value]
        return tuple(parts)


class ResidentCatalog:
    """The resident levels; thread-safe (projector thread writes, request threads read)."""

    def __init__(self, clickhouse: ClickHouse, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.clickhouse = clickhouse
        self.max_rows = max_rows
        self._levels: dict[Level, ResidentLevel] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        """Read every resident level from ClickHouse; a level over `max_rows` stays out."""
        levels: dict[Level, ResidentLevel] = {}
        for level in RESIDENT_LEVELS:
            table = TABLES[level]
            count = int(self.clickhouse.rows(f"SELECT count() FROM {table} FINAL")[0][0])
            if count > self.max_rows:
                log.warning(
                    "%s has %d rows, over the resident limit of %d: searched in ClickHouse",
                    table, count, self.max_rows,
                )  # fmt: skip
                continue
            resident = ResidentLevel(level)
            for row in self._select(resident, ""):
                resident.put(row)
            levels[level] = resident
        with self._lock:
            self._levels = levels

    def clear(self) -> None:
        with self._lock:
            self._levels = {level: ResidentLevel(level) for level in RESIDENT_LEVELS}

    def refresh(self, studies: Iterable[str], patients: Iterable[str]) -> None:
        """Re-read the rows a projected batch recomputed (called after it wrote them)."""
        wanted = {
            Level.PATIENT: sorted(set(patients)),
            Level.STUDY: sorted(set(studies)),
            Level.SERIES: sorted(set(studies)),
        }
        for level, keys in wanted.items():
            resident = self._levels.get(level)
            if resident is None or not keys:
                continue
            column = REFRESH_BY[level]
            fresh = self._select(resident, f"WHERE {column} IN {{keys:Array(String)}}", keys)
            with self._lock:
                stale = {
                    key
                    for value in keys
                    for key in resident.index[column].get(value, set())
                }  # fmt: skip
                for row in fresh:
                    stale.discard(resident.key(row))
                    resident.put(row)
                for key in stale:
                    resident.remove(key)
                if len(resident.rows) > self.max_rows:
                    log.warning("%s outgrew the resident limit", TABLES[level])
                    del self._levels[level]

    def holds(self, level: Level) -> bool:
        return level in self._levels

    def search(
        self,
        level: Level,
        conditions: Conditions,
        columns: Sequence[str],
        limit: int,
        offset: int,
        max_scan: int = FULL_SCAN_LIMIT,
    ) -> list[Row] | None:
        """Matching rows' `columns` in ClickHouse's order; None if the level is not held or
        the search would scan more than `max_scan` rows."""
        resident = self._levels.get(level)
        if resident is None:
            return None
        position = resident.position
        if any(column not in position for column, _ in conditions.tests):
            return None
        with self._lock:
            candidates = resident.candidates(conditions, max_scan)
        if candidates is None:
            return None
        tests = [(position[column], test) for column, test in conditions.tests]
        matched = [row for row in candidates if all(test(row[i]) for i, test in tests)]
        matched.sort(key=resident.sort_key)
        wanted = [position[c] for c in columns]
        return [tuple(row[i] for i in wanted) for row in matched[offset : offset + limit]]

    def _select(
        self, resident: ResidentLevel, where: str, keys: list[str] | None = None
    ) -> list[Row]:
        sql = f"SELECT {', '.join(resident.columns)} FROM {TABLES[resident.level]} FINAL {where}"
        rows = self.clickhouse.rows(sql, {"keys": keys} if keys is not None else None)
        # Arrays arrive as lists: tuples keep a row immutable once shared with readers.
        return [tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in rows]
