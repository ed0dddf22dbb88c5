"""The node read model's health: status, since, last success and the change history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.nodes import NodeRegistry
from schemas.events import Event, NodeChecked, NodeDeleted, NodeSaved, NodeStatusChanged
from schemas.nodes import HealthStatus, Node, NodeProbe, health_status

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
UP = [NodeProbe(kind="c-echo", ok=True, rtt_ms=2.0)]
DOWN = [NodeProbe(kind="c-echo", ok=False, error="refused")]


def check(minute: int, status: HealthStatus, probes: list[NodeProbe]) -> NodeChecked:
    at = T0 + timedelta(minutes=minute)
    return NodeChecked(name="peer", status=status, probes=probes, occurred_at=at)


def apply(registry: NodeRegistry, events: list[Event], start: int = 0) -> None:
    registry.apply([LogRecord(0, start + i, e, b"") for i, e in enumerate(events)])


def test_status_is_up_only_when_every_probe_answers() -> None:
    qido_down = NodeProbe(kind="qido", ok=False, error="HTTP 503")
    assert health_status(UP) == "up"
    assert health_status([*UP, qido_down]) == "degraded"
    assert health_status([*DOWN, qido_down]) == "down"
    assert health_status([]) == "down"


def test_health_keeps_since_and_last_success_across_checks(clickhouse: ClickHouse) -> None:
    registry = NodeRegistry(clickhouse)
    registry.ensure_tables()
    node = Node(name="peer", ae_title="PEER", host="127.0.0.1", port=104)
    apply(registry, [NodeSaved(node=node, actor="admin"), check(0, "up", UP), check(1, "up", UP)])
    health = registry.health("peer")
    assert health is not None
    assert (health.since, health.last_success, health.rtt_ms) == (
        T0,
        T0 + timedelta(minutes=1),
        2.0,
    )

    apply(registry, [check(2, "down", DOWN), check(3, "down", DOWN)], start=3)
    health = registry.health("peer")
    assert health is not None and health.status == "down"
    assert health.since == T0 + timedelta(minutes=2)
    assert health.last_success == T0 + timedelta(minutes=1)
    assert health.rtt_ms is None
    assert registry.statuses() == {"peer": "down"}

    # Memory is loaded from the table: a restarted API knows the same.
    again = NodeRegistry(clickhouse)
    again.ensure_tables()
    assert again.health("peer") == health


def test_history_lists_changes_newest_first_and_replays_once(clickhouse: ClickHouse) -> None:
    registry = NodeRegistry(clickhouse)
    registry.ensure_tables()
    changes: list[Event] = [
        NodeStatusChanged(name="peer", status="up", previous=None, occurred_at=T0),
        NodeStatusChanged(
            name="peer", status="down", previous="up", reason="c-echo: refused",
            occurred_at=T0 + timedelta(minutes=5),
        ),
    ]  # fmt: skip
    apply(registry, changes)
    apply(registry, changes)  # the same records again (at-least-once delivery)
    history = registry.history("peer")
    assert [(h.status, h.previous, h.reason) for h in history] == [
        ("down", "up", "c-echo: refused"),
        ("up", None, ""),
    ]
    assert history[0].at == T0 + timedelta(minutes=5)


def test_a_deleted_node_has_no_health(clickhouse: ClickHouse) -> None:
    registry = NodeRegistry(clickhouse)
    registry.ensure_tables()
    node = Node(name="peer", ae_title="PEER", host="127.0.0.1", port=104)
    apply(registry, [NodeSaved(node=node, actor="a"), check(0, "up", UP)])
    apply(registry, [NodeDeleted(name="peer", actor="a")], start=2)
    assert registry.health("peer") is None and registry.statuses() == {}
