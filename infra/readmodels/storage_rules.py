"""The storage rules read model (infra/readmodels/rules.py, kind "storage")."""

from __future__ import annotations

from infra.clickhouse import ClickHouse
from infra.readmodels.rules import VersionedRules
from schemas.events import StorageRuleDeleted, StorageRuleSaved
from schemas.tiers import StorageRule

StorageRules = VersionedRules[StorageRule]


def open_storage_rules(clickhouse: ClickHouse) -> StorageRules:
    return VersionedRules(clickhouse, "storage", StorageRule, StorageRuleSaved, StorageRuleDeleted)
