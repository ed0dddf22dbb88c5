"""Routing rules: the current version of each in memory (the worker's router asks for them
on every stored instance), and every version ever saved, for the admin to look back."""

from __future__ import annotations

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.documents import Documents, Positions
from schemas.events import RoutingRuleDeleted, RoutingRuleSaved
from schemas.routing import RoutingRule

VERSIONS_DDL = """
CREATE TABLE IF NOT EXISTS routing_rule_versions (
    name String,
    version UInt32,
    deleted Bool,
    body String,
    log_partition UInt32,
    log_offset UInt64
) ENGINE = ReplacingMergeTree(log_offset) ORDER BY (name, version, deleted)
"""
VERSION_COLUMNS = ["name", "version", "deleted", "body", "log_partition", "log_offset"]


class RoutingRules:
    name = "routing"
    tables: tuple[str, ...] = ("routing_rules", "routing_rule_versions", "routing_positions")

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse
        self._rules = Documents(clickhouse, "routing_rules", RoutingRule)
        self._positions = Positions(clickhouse, "routing_positions")

    def ensure_tables(self) -> None:
        self._rules.ensure()
        self.clickhouse.command(VERSIONS_DDL)
        self._positions.ensure()

    def positions(self) -> dict[int, int]:
        return self._positions.read()

    def drop(self) -> None:
        self._rules.drop()
        self.clickhouse.command("DROP TABLE IF EXISTS routing_rule_versions")
        self._positions.drop()

    def apply(self, records: list[LogRecord]) -> None:
        last: dict[int, int] = {}
        versions: list[list[object]] = []
        for record in records:
            last[record.partition] = record.offset
            event, at = record.event, (record.partition, record.offset)
            if isinstance(event, RoutingRuleSaved):
                rule = event.rule
                self._rules.put(rule.name, rule, *at)
                versions.append([rule.name, rule.version, False, rule.model_dump_json(), *at])
            elif isinstance(event, RoutingRuleDeleted):
                self._rules.delete(event.name, *at)
                versions.append([event.name, event.rule_version, True, "{}", *at])
        self._rules.flush()
        if versions:
            self.clickhouse.insert("routing_rule_versions", versions, VERSION_COLUMNS)
        self._positions.write(last)

    def rule(self, name: str) -> RoutingRule | None:
        return self._rules.get(name)

    def rules(self) -> list[RoutingRule]:
        return self._rules.all()

    def last_version(self, name: str) -> int:
        """The highest version the rule ever had (0 if never): a rule deleted and made
        again goes on counting, so a version number names one content for good."""
        rows = self.clickhouse.rows(
            "SELECT max(version) FROM routing_rule_versions WHERE name = {name:String}",
            {"name": name},
        )
        return int(rows[0][0]) if rows else 0

    def versions(self, name: str) -> list[RoutingRule]:
        """Every saved version of the rule, newest first (deletions are not versions)."""
        rows = self.clickhouse.rows(
            "SELECT body FROM routing_rule_versions FINAL"
            " WHERE name = {name:String} AND NOT deleted ORDER BY version DESC",
            {"name": name},
        )
        return [RoutingRule.model_validate_json(body) for (body,) in rows]
