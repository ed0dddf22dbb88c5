"""The retention rules read model (infra/readmodels/rules.py, kind "retention")."""

from __future__ import annotations

from infra.clickhouse import ClickHouse
from infra.readmodels.rules import VersionedRules
from schemas.events import RetentionRuleDeleted, RetentionRuleSaved
from schemas.retention import RetentionRule

RetentionRules = VersionedRules[RetentionRule]


def open_retention_rules(clickhouse: ClickHouse) -> RetentionRules:
    return VersionedRules(
        clickhouse, "retention", RetentionRule, RetentionRuleSaved, RetentionRuleDeleted
    )
