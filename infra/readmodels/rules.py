"""Versioned rules (routing, prefetch): the current version of each in memory (asked for
on every stored instance or scheduled procedure), and every version ever saved, for the
admin to look back. One class for every kind of rule; a kind is its table prefix, its rule
model and its two events."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.documents import Documents, Positions

Rule = TypeVar("Rule", bound=BaseModel)


class VersionedRules(Generic[Rule]):
    """`<kind>_rules` (current), `<kind>_rule_versions` (history), `<kind>_positions`.

    `saved` events carry the whole rule as `rule`; `deleted` ones its `name` and the
    `rule_version` deleted."""

    def __init__(
        self,
        clickhouse: ClickHouse,
        kind: str,
        model: type[Rule],
        # Any: the fields these events have are the contract in the class docstring.
        saved: type[Any],
        deleted: type[Any],
    ) -> None:
        self.name = kind
        self.clickhouse = clickhouse
        self.model = model
        self._saved, self._deleted = saved, deleted
        self._versions = f"{kind}_rule_versions"
        self.tables: tuple[str, ...] = (f"{kind}_rules", self._versions, f"{kind}_positions")
        self._rules = Documents(clickhouse, f"{kind}_rules", model)
        self._positions = Positions(clickhouse, f"{kind}_positions")

    def ensure_tables(self) -> None:
        self._rules.ensure()
        self.clickhouse.command(
            f"CREATE TABLE IF NOT EXISTS {self._versions} (name String, version UInt32,"
            " deleted Bool, body String, log_partition UInt32, log_offset UInt64)"
            " ENGINE = ReplacingMergeTree(log_offset) ORDER BY (name, version, deleted)"
        )
        self._positions.ensure()

    def positions(self) -> dict[int, int]:
        return self._positions.read()

    def drop(self) -> None:
        self._rules.drop()
        self.clickhouse.command(f"DROP TABLE IF EXISTS {self._versions}")
        self._positions.drop()

    def apply(self, records: list[LogRecord]) -> None:
        last: dict[int, int] = {}
        versions: list[list[object]] = []
        for record in records:
            last[record.partition] = record.offset
            event = record.event
            at = (record.partition, record.offset)
            if isinstance(event, self._saved):
                rule = event.rule
                self._rules.put(rule.name, rule, *at)
                versions.append([rule.name, rule.version, False, rule.model_dump_json(), *at])
            elif isinstance(event, self._deleted):
                self._rules.delete(event.name, *at)
                versions.append([event.name, event.rule_version, True, "{}", *at])
        self._rules.flush()
        if versions:
            columns = ["name", "version", "deleted", "body", "log_partition", "log_offset"]
            self.clickhouse.insert(self._versions, versions, columns)
        self._positions.write(last)

    def rule(self, name: str) -> Rule | None:
        return self._rules.get(name)

    def rules(self) -> list[Rule]:
        return self._rules.all()

    def last_version(self, name: str) -> int:
        """The highest version the rule ever had (0 if never): a rule deleted and made
        again goes on counting, so a version number names one content for good."""
        rows = self.clickhouse.rows(
            f"SELECT max(version) FROM {self._versions} WHERE name = {{name:String}}",
            {"name": name},
        )
        return int(rows[0][0]) if rows else 0

    def versions(self, name: str) -> list[Rule]:
        """Every saved version of the rule, newest first (deletions are not versions)."""
        rows = self.clickhouse.rows(
            f"SELECT body FROM {self._versions} FINAL"
            " WHERE name = {name:String} AND NOT deleted ORDER BY version DESC",
            {"name": name},
        )
        return [self.model.model_validate_json(body) for (body,) in rows]
