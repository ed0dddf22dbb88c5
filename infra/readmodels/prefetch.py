"""The prefetch rules read model (infra/readmodels/rules.py, kind "prefetch")."""

from __future__ import annotations

from infra.clickhouse import ClickHouse
from infra.readmodels.rules import VersionedRules
from schemas.events import PrefetchRuleDeleted, PrefetchRuleSaved
from schemas.prefetch import PrefetchRule

PrefetchRules = VersionedRules[PrefetchRule]


def open_prefetch_rules(clickhouse: ClickHouse) -> PrefetchRules:
    return VersionedRules(
        clickhouse, "prefetch", PrefetchRule, PrefetchRuleSaved, PrefetchRuleDeleted
    )
