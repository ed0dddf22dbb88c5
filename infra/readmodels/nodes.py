"""The DICOM node registry: every remote AE we know, by name and by AE title, in memory,
with the health the checks last found and the history of its status changes.

The gateway asks for it (GET /api/internal/nodes) to decide which associations to accept
and what each may do; the admin API and C-MOVE read it here; the health workflow reads
the last status (GET /api/internal/node-health) to tell a change from a repeat.
"""

from __future__ import annotations

from datetime import UTC

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.documents import Documents, Positions
from schemas.events import NodeChecked, NodeDeleted, NodeSaved, NodeStatusChanged
from schemas.nodes import HealthStatus, Node, NodeHealth, NodeStatusChange

HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS node_status_history (
    name String,
    status LowCardinality(String),
    previous LowCardinality(String),
    at DateTime64(3, 'UTC'),
    reason String,
    log_partition UInt32,
    log_offset UInt64
) ENGINE = ReplacingMergeTree ORDER BY (name, log_partition, log_offset)
"""
HISTORY_COLUMNS = ["name", "status", "previous", "at", "reason", "log_partition", "log_offset"]


def checked(previous: NodeHealth | None, event: NodeChecked) -> NodeHealth:
    """The health after one more check: `since` and `last_success` carry over."""
    at = event.occurred_at
    answered = [p for p in event.probes if p.ok]
    same = previous is not None and previous.status == event.status
    return NodeHealth(
        status=event.status,
        since=previous.since if same and previous is not None else at,
        checked_at=at,
        last_success=at if answered else (previous.last_success if previous else None),
        rtt_ms=answered[0].rtt_ms if answered else None,
        probes=event.probes,
    )


class NodeRegistry:
    name = "nodes"
    tables: tuple[str, ...] = ("nodes", "node_health", "node_status_history", "nodes_positions")

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse
        self._nodes = Documents(clickhouse, "nodes", Node)
        self._health = Documents(clickhouse, "node_health", NodeHealth)
        self._positions = Positions(clickhouse, "nodes_positions")

    def ensure_tables(self) -> None:
        self._nodes.ensure()
        self._health.ensure()
        self.clickhouse.command(HISTORY_DDL)
        self._positions.ensure()

    def positions(self) -> dict[int, int]:
        return self._positions.read()

    def drop(self) -> None:
        self._nodes.drop()
        self._health.drop()
        self.clickhouse.command("DROP TABLE IF EXISTS node_status_history")
        self._positions.drop()

    def apply(self, records: list[LogRecord]) -> None:
        last: dict[int, int] = {}
        history: list[list[object]] = []
        for record in records:
            last[record.partition] = record.offset
            event = record.event
            if isinstance(event, NodeSaved):
                self._nodes.put(event.node.name, event.node, record.partition, record.offset)
            elif isinstance(event, NodeDeleted):
                self._nodes.delete(event.name, record.partition, record.offset)
                self._health.delete(event.name, record.partition, record.offset)
            elif isinstance(event, NodeChecked):
                health = checked(self._health.get(event.name), event)
                self._health.put(event.name, health, record.partition, record.offset)
            elif isinstance(event, NodeStatusChanged):
                history.append(
                    [
                        event.name,
                        event.status,
                        event.previous or "",
                        event.occurred_at,
                        event.reason,
                        record.partition,
                        record.offset,
                    ]
                )
        self._nodes.flush()
        self._health.flush()
        if history:
            self.clickhouse.insert("node_status_history", history, HISTORY_COLUMNS)
        self._positions.write(last)

    def node(self, name: str) -> Node | None:
        return self._nodes.get(name)

    def nodes(self) -> list[Node]:
        return self._nodes.all()

    def health(self, name: str) -> NodeHealth | None:
        return self._health.get(name)

    def statuses(self) -> dict[str, HealthStatus]:
        """The last status of every checked node that is still registered."""
        return {
            node.name: health.status
            for node in self._nodes.all()
            if (health := self._health.get(node.name)) is not None
        }

    def history(self, name: str, limit: int = 100) -> list[NodeStatusChange]:
        """A node's status changes, newest first."""
        rows = self.clickhouse.rows(
            "SELECT status, previous, at, reason FROM node_status_history FINAL"
            " WHERE name = {name:String} ORDER BY at DESC, log_offset DESC LIMIT {limit:UInt32}",
            {"name": name, "limit": limit},
        )
        return [
            NodeStatusChange(
                name=name,
                status=status,
                previous=previous or None,
                at=at if at.tzinfo else at.replace(tzinfo=UTC),
                reason=reason,
            )
            for status, previous, at, reason in rows
        ]
