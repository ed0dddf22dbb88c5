"""Where each archived instance is: its tier, from `pacs.instance.stored` (hot on arrival,
or the tier an identical copy was found in) and `pacs.instance.migrated`; rows go when a
deletion's bytes are purged (`pacs.instances.purged`), so usage counts what storage holds.

Answers `GET /api/studies/{study}/storage` (each instance's tier), per-tier usage (the API
and /metrics), and which studies a storage rule moves (infra/readmodels/study_ages.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.documents import Positions
from infra.readmodels.study_ages import matching_studies
from schemas.events import InstanceMigrated, InstancesPurged, InstanceStored
from schemas.tiers import TIER_NAMES, StorageRule, TierUsage

DDL = """
CREATE TABLE IF NOT EXISTS instance_tiers (
    study_instance_uid String,
    series_instance_uid String,
    sop_instance_uid String,
    tier LowCardinality(String),
    size UInt64,
    sha256 String,
    since DateTime64(3, 'UTC'),
    log_partition UInt32,
    log_offset UInt64
)
ENGINE = ReplacingMergeTree(log_offset)
ORDER BY (study_instance_uid, series_instance_uid, sop_instance_uid)
"""
COLUMNS = [
    "study_instance_uid", "series_instance_uid", "sop_instance_uid", "tier", "size", "sha256",
    "since", "log_partition", "log_offset",
]  # fmt: skip


log = logging.getLogger(__name__)


class StorageTiers:
    name = "tiers"
    tables: tuple[str, ...] = ("instance_tiers", "tiers_positions")

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse
        self._positions = Positions(clickhouse, "tiers_positions")

    def ensure_tables(self) -> None:
        self.clickhouse.command(DDL)
        self._positions.ensure()

    def positions(self) -> dict[int, int]:
        return self._positions.read()

    def drop(self) -> None:
        self.clickhouse.command("DROP TABLE IF EXISTS instance_tiers")
        self._positions.drop()

    def apply(self, records: list[LogRecord]) -> None:
        rows: list[list[Any]] = []
        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = record.offset
            event, at = record.event, (record.partition, record.offset)
            if isinstance(event, InstanceStored):
                ref = event.instance
                rows.append([ref.study_instance_uid, ref.series_instance_uid,
                             ref.sop_instance_uid, event.tier, ref.size, ref.sha256,
                             event.occurred_at, *at])  # fmt: skip
            elif isinstance(event, InstanceMigrated):
                rows.append([event.study_instance_uid, event.series_instance_uid,
                             event.sop_instance_uid, event.to_tier, event.size, event.sha256,
                             event.occurred_at, *at])  # fmt: skip
            elif isinstance(event, InstancesPurged):
                # Rows before the purge first: in log order, an arrival after it stays.
                self._insert(rows)
                rows = []
                self._purge(event)
        self._insert(rows)
        self._positions.write(last)

    def _insert(self, rows: list[list[Any]]) -> None:
        if rows:
            self.clickhouse.insert("instance_tiers", rows, COLUMNS)

    def _purge(self, event: InstancesPurged) -> None:
        scope = event.scope
        where = (
            "study_instance_uid = {study:String} AND sop_instance_uid NOT IN {kept:Array(String)}"
        )
        if scope.series_instance_uid:
            where += " AND series_instance_uid = {series:String}"
        if scope.sop_instance_uids:
            where += " AND sop_instance_uid IN {sops:Array(String)}"
        params = {"study": scope.study_instance_uid, "series": scope.series_instance_uid,
                  "sops": scope.sop_instance_uids, "kept": event.kept}  # fmt: skip
        self.clickhouse.command(f"DELETE FROM instance_tiers WHERE {where}", params)

    # -- queries -------------------------------------------------------------------------

    def of_study(self, study: str) -> dict[str, tuple[str, datetime]]:
        """Each archived instance's tier and since when, by SOP Instance UID."""
        rows = self.clickhouse.rows(
            "SELECT sop_instance_uid, tier, since FROM instance_tiers FINAL"
            " WHERE study_instance_uid = {study:String}",
            {"study": study},
        )
        return {str(sop): (str(tier), since) for sop, tier, since in rows}

    def usage(self) -> list[TierUsage]:
        """Instances and bytes in each tier (every tier listed, empty ones with zeros)."""
        rows = self.clickhouse.rows(
            "SELECT tier, count(), sum(size) FROM instance_tiers FINAL GROUP BY tier"
        )
        found = {str(t): (int(n), int(b)) for t, n, b in rows}
        return [
            TierUsage(tier=t, instances=found.get(t, (0, 0))[0], bytes=found.get(t, (0, 0))[1])
            for t in TIER_NAMES
        ]

    def rule_candidates(
        self, rule: StorageRule, limit: int, now: datetime | None = None
    ) -> list[tuple[str, str]]:
        """Studies the rule moves now, with their PatientID: some instance in a tier before
        the rule's, and every condition the rule names holds."""
        earlier = list(TIER_NAMES[: TIER_NAMES.index(rule.to_tier)])
        return matching_studies(self.clickhouse, rule, limit, now, in_tiers=earlier)


class TierUsageCollector:
    """`pacs_storage_tier_instances` and `pacs_storage_tier_bytes` per tier in the API's
    /metrics, from the read model, asked at most every CACHE_SECONDS (a scrape every few
    seconds must not become a ClickHouse aggregation each time)."""

    CACHE_SECONDS = 15.0
    _installed: ClassVar[TierUsageCollector | None] = None

    def __init__(self, model: StorageTiers) -> None:
        self.model = model
        self._usage: list[TierUsage] = []
        self._at = float("-inf")

    @classmethod
    def register(cls, model: StorageTiers) -> None:
        """Collect from `model` (the process's one; a test's second app replaces the first)."""
        if cls._installed is None:
            cls._installed = cls(model)
            REGISTRY.register(cls._installed)
        else:
            cls._installed.model, cls._installed._at = model, float("-inf")

    def collect(self) -> Iterator[Metric]:
        if time.monotonic() - self._at > self.CACHE_SECONDS:
            try:
                self._usage, self._at = self.model.usage(), time.monotonic()
            except Exception as exc:  # noqa: BLE001 - a scrape must not fail for it
                log.warning("tier usage not available for /metrics: %r", exc)
        instances = GaugeMetricFamily(
            "pacs_storage_tier_instances", "Archived instances per storage tier", labels=["tier"]
        )
        size = GaugeMetricFamily(
            "pacs_storage_tier_bytes", "Bytes of archived instances per storage tier",
            labels=["tier"],
        )  # fmt: skip
        for usage in self._usage:
            instances.add_metric([usage.tier], usage.instances)
            size.add_metric([usage.tier], usage.bytes)
        yield instances
        yield size
