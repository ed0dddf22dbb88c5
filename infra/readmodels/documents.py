"""A table of JSON documents keyed by name, newest version wins, held in memory too.

For small read models read on every request (users, API keys, DICOM nodes): lookups are
dictionary reads, and the ClickHouse table is what memory is loaded from at start or refilled
by a rebuild. All events of one document are keyed to one partition, so log offsets order its
versions (ReplacingMergeTree keeps the newest); a deletion is a version with `deleted`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from infra.clickhouse import ClickHouse

Doc = TypeVar("Doc", bound=BaseModel)

COLUMNS = ["name", "deleted", "body", "log_partition", "log_offset"]


class Documents(Generic[Doc]):
    """One table; `stage` collects a batch's rows, `flush` writes them in one insert."""

    def __init__(self, clickhouse: ClickHouse, table: str, model: type[Doc]) -> None:
        self.clickhouse = clickhouse
        self.table = table
        self.model = model
        self._lock = threading.Lock()
        self._live: dict[str, Doc] = {}
        self._deleted: set[str] = set()
        self._rows: list[list[Any]] = []

    def ensure(self) -> None:
        self.clickhouse.command(
            f"CREATE TABLE IF NOT EXISTS {self.table} (name String, deleted Bool, body String,"
            " log_partition UInt32, log_offset UInt64)"
            " ENGINE = ReplacingMergeTree(log_offset) ORDER BY name"
        )
        rows = self.clickhouse.rows(f"SELECT name, deleted, body FROM {self.table} FINAL")
        with self._lock:
            self._live = {n: self.model.model_validate_json(b) for n, d, b in rows if not d}
            self._deleted = {n for n, d, _ in rows if d}

    def drop(self) -> None:
        self.clickhouse.command(f"DROP TABLE IF EXISTS {self.table}")
        with self._lock:
            self._live, self._deleted = {}, set()

    def put(self, name: str, doc: Doc, partition: int, offset: int) -> None:
        self._rows.append([name, False, doc.model_dump_json(), partition, offset])
        with self._lock:
            self._live[name] = doc
            self._deleted.discard(name)

    def delete(self, name: str, partition: int, offset: int) -> None:
        self._rows.append([name, True, "{}", partition, offset])
        with self._lock:
            self._live.pop(name, None)
            self._deleted.add(name)

    def update(self, name: str, change: Callable[[Doc], Doc], partition: int, offset: int) -> None:
        """A new version of an existing document; nothing when it does not exist."""
        current = self.get(name)
        if current is not None:
            self.put(name, change(current), partition, offset)

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            self.clickhouse.insert(self.table, rows, COLUMNS)

    def get(self, name: str) -> Doc | None:
        with self._lock:
            return self._live.get(name)

    def was_deleted(self, name: str) -> bool:
        with self._lock:
            return name in self._deleted

    def all(self) -> list[Doc]:
        with self._lock:
            return [self._live[name] for name in sorted(self._live)]


class Positions:
    """Per partition, the offset of the last record a projection applied: where it resumes."""

    def __init__(self, clickhouse: ClickHouse, table: str) -> None:
        self.clickhouse = clickhouse
        self.table = table

    def ensure(self) -> None:
        self.clickhouse.command(
            f"CREATE TABLE IF NOT EXISTS {self.table} (log_partition UInt32, log_offset UInt64)"
            " ENGINE = ReplacingMergeTree(log_offset) ORDER BY log_partition"
        )

    def read(self) -> dict[int, int]:
        rows = self.clickhouse.rows(
            f"SELECT log_partition, max(log_offset) FROM {self.table} GROUP BY log_partition"
        )
        return {int(p): int(o) for p, o in rows}

    def write(self, last: dict[int, int]) -> None:
        if last:
            rows = [[p, o] for p, o in last.items()]
            self.clickhouse.insert(self.table, rows, ["log_partition", "log_offset"])

    def drop(self) -> None:
        self.clickhouse.command(f"DROP TABLE IF EXISTS {self.table}")
