"""Deletions whose bytes are not purged yet, in a table of the catalog and in memory.

Why: a retrieve by UIDs (WADO-RS instance, frames, rendered, WADO-URI) reads storage
directly, without asking the catalog, and until the purge the bytes of a deleted instance
are still there. Each such retrieve asks here first — a dictionary look-up by study, so
retrieves of studies without a pending deletion pay nothing — and only for a study with
one asks the catalog whether the instance is listed (it may have arrived again).
"""

from __future__ import annotations

import threading

from infra.clickhouse import ClickHouse
from schemas.lifecycle import DeletionScope

DELETIONS_DDL = """
CREATE TABLE IF NOT EXISTS catalog_deletions (
    deletion_id String,
    study_instance_uid String,
    series_instance_uid String,
    sop_instance_uids Array(String),
    purged UInt8,
    log_partition UInt32,
    log_offset UInt64
) ENGINE = ReplacingMergeTree(log_offset)
ORDER BY (study_instance_uid, deletion_id)
"""
DELETION_COLUMNS = [
    "deletion_id", "study_instance_uid", "series_instance_uid", "sop_instance_uids", "purged",
    "log_partition", "log_offset",
]  # fmt: skip


class PendingDeletions:
    def __init__(self) -> None:
        self._by_study: dict[str, dict[str, DeletionScope]] = {}
        self._lock = threading.Lock()

    def load(self, clickhouse: ClickHouse) -> None:
        rows = clickhouse.rows(
            "SELECT deletion_id, study_instance_uid, series_instance_uid, sop_instance_uids"
            " FROM catalog_deletions FINAL WHERE purged = 0"
        )
        with self._lock:
            self._by_study.clear()
            for deletion_id, study, series, sops in rows:
                scope = DeletionScope(
                    study_instance_uid=study,
                    series_instance_uid=series,
                    sop_instance_uids=list(sops),
                )
                self._by_study.setdefault(str(study), {})[str(deletion_id)] = scope

    def add(self, deletion_id: str, scope: DeletionScope) -> None:
        with self._lock:
            self._by_study.setdefault(scope.study_instance_uid, {})[deletion_id] = scope

    def purged(self, study: str, deletion_id: str) -> None:
        with self._lock:
            pending = self._by_study.get(study, {})
            pending.pop(deletion_id, None)
            if not pending:
                self._by_study.pop(study, None)

    def clear(self) -> None:
        with self._lock:
            self._by_study.clear()

    def covers(self, study: str, series: str, sop: str) -> bool:
        """True when a pending deletion covers the instance (it may have arrived again)."""
        with self._lock:
            pending = list(self._by_study.get(study, {}).values())
        return any(scope.covers(study, series, sop) for scope in pending)
