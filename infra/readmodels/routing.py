"""The routing rules read model (infra/readmodels/rules.py, kind "routing")."""

from __future__ import annotations

from infra.clickhouse import ClickHouse
from infra.readmodels.rules import VersionedRules
from schemas.events import RoutingRuleDeleted, RoutingRuleSaved
from schemas.routing import RoutingRule

RoutingRules = VersionedRules[RoutingRule]


def open_routing_rules(clickhouse: ClickHouse) -> RoutingRules:
    return VersionedRules(clickhouse, "routing", RoutingRule, RoutingRuleSaved, RoutingRuleDeleted)
