"""NodeHealthWorkflow on the time-skipping test server, with stand-in activities."""

from __future__ import annotations

import uuid

from temporalio import activity
from temporalio.worker import Worker

from activities.node_health import NodeRound
from schemas.events import NodeChecked, NodeStatusChanged
from schemas.nodes import HealthStatus, Node, NodeProbe
from schemas.workflows import PublishEvents
from tests.workflows.time_skipping import start_env
from workflows.node_health import NodeHealthWorkflow


def node(name: str) -> Node:
    return Node(name=name, ae_title=name.upper(), host="127.0.0.1", port=104)


class FakeHealth:
    def __init__(self, answers: dict[str, list[NodeProbe]], previous: dict[str, HealthStatus]):
        self.answers = answers
        self.previous = previous
        self.published: list[NodeChecked | NodeStatusChanged] = []

    @activity.defn(name="nodes_to_check")
    async def nodes_to_check(self) -> NodeRound:
        return NodeRound(nodes=[node(n) for n in self.answers], previous=self.previous)

    @activity.defn(name="probe_node")
    async def probe_node(self, target: Node) -> list[NodeProbe]:
        return self.answers[target.name]

    @activity.defn(name="publish_events")
    async def publish_events(self, request: PublishEvents) -> None:
        for event in request.events:
            assert isinstance(event, NodeChecked | NodeStatusChanged)
            self.published.append(event)


async def run_round(fake: FakeHealth) -> int:
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[NodeHealthWorkflow],
            activities=[fake.nodes_to_check, fake.probe_node, fake.publish_events],
        ):
            checked: int = await env.client.execute_workflow(
                NodeHealthWorkflow.run, 5.0, id=f"node-health:{queue}", task_queue=queue
            )
            return checked


ECHO_OK = NodeProbe(kind="c-echo", ok=True, rtt_ms=1.5)
ECHO_REFUSED = NodeProbe(kind="c-echo", ok=False, error="connection refused")
QIDO_401 = NodeProbe(kind="qido", ok=False, error="QIDO-RS answered HTTP 401")


async def test_a_round_announces_every_check_and_only_the_changes() -> None:
    fake = FakeHealth(
        answers={"same": [ECHO_OK], "fell": [ECHO_REFUSED], "new": [ECHO_OK, QIDO_401]},
        previous={"same": "up", "fell": "up"},
    )
    assert await run_round(fake) == 3
    checked = {e.name: e.status for e in fake.published if isinstance(e, NodeChecked)}
    assert checked == {"same": "up", "fell": "down", "new": "degraded"}
    changes = [
        (e.name, e.previous, e.status, e.reason)
        for e in fake.published
        if isinstance(e, NodeStatusChanged)
    ]
    assert changes == [
        ("fell", "up", "down", "c-echo: connection refused"),
        ("new", None, "degraded", "qido: QIDO-RS answered HTTP 401"),
    ]
    assert len({e.event_id for e in fake.published}) == len(fake.published)


async def test_no_nodes_no_events() -> None:
    fake = FakeHealth(answers={}, previous={})
    assert await run_round(fake) == 0
    assert fake.published == []
