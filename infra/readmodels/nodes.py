"""The DICOM node registry: every remote AE we know, by name and by AE title, in memory.

The gateway asks for it (GET /api/internal/nodes) to decide which associations to accept
and what each may do; the admin API and C-MOVE read it here.
"""

from __future__ import annotations

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.documents import Documents, Positions
from schemas.events import NodeDeleted, NodeSaved
from schemas.nodes import Node


class NodeRegistry:
    name = "nodes"
    tables: tuple[str, ...] = ("nodes", "nodes_positions")

    def __init__(self, clickhouse: ClickHouse) -> None:
        self._nodes = Documents(clickhouse, "nodes", Node)
        self._positions = Positions(clickhouse, "nodes_positions")

    def ensure_tables(self) -> None:
        self._nodes.ensure()
        self._positions.ensure()

    def positions(self) -> dict[int, int]:
        return self._positions.read()

    def drop(self) -> None:
        self._nodes.drop()
        self._positions.drop()

    def apply(self, records: list[LogRecord]) -> None:
        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = record.offset
            event = record.event
            if isinstance(event, NodeSaved):
                self._nodes.put(event.node.name, event.node, record.partition, record.offset)
            elif isinstance(event, NodeDeleted):
                self._nodes.delete(event.name, record.partition, record.offset)
        self._nodes.flush()
        self._positions.write(last)

    def node(self, name: str) -> Node | None:
        return self._nodes.get(name)

    def nodes(self) -> list[Node]:
        return self._nodes.all()
