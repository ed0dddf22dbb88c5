"""NodeHealthWorkflow: one round of health checks of every registered node.

A Temporal Schedule (`node-health`, made by the worker) starts a round every
`federation.health_interval_seconds`; `POST /api/nodes/check` triggers one at once. Each
round probes the nodes side by side (a dead node costs its probe timeout, not everybody's),
then announces `pacs.node.checked` for each node and `pacs.node.status-changed` for each
whose status differs from the last round's.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from activities.node_health import NodeHealthActivities, NodeRound
    from schemas.events import Event, NodeChecked, NodeStatusChanged
    from schemas.nodes import Node, NodeProbe, health_status
    from schemas.workflows import PublishEvents

SCHEDULE_ID = "node-health"
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=5)


def round_events(
    nodes: list[Node], results: list[list[NodeProbe]], round_: NodeRound
) -> list[Event]:
    """A checked event per node, and a status change where the status moved."""
    events: list[Event] = []
    for node, probes in zip(nodes, results, strict=True):
        status = health_status(probes)
        events.append(
            NodeChecked(
                event_id=workflow.uuid4(),
                occurred_at=workflow.now(),
                name=node.name,
                status=status,
                probes=probes,
            )
        )
        previous = round_.previous.get(node.name)
        if previous != status:
            events.append(
                NodeStatusChanged(
                    event_id=workflow.uuid4(),
                    occurred_at=workflow.now(),
                    name=node.name,
                    status=status,
                    previous=previous,
                    reason="; ".join(f"{p.kind}: {p.error}" for p in probes if not p.ok),
                )
            )
    return events


@workflow.defn
class NodeHealthWorkflow:
    @workflow.run
    async def run(self, probe_timeout_seconds: float) -> int:
        """Check every node once; returns how many were checked."""
        round_ = await workflow.execute_activity_method(
            NodeHealthActivities.nodes_to_check,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        if not round_.nodes:
            return 0
        # An association's connect, negotiation and echo each may take the timeout.
        limit = timedelta(seconds=4 * probe_timeout_seconds + 10)
        results = await asyncio.gather(
            *(
                workflow.execute_activity_method(
                    NodeHealthActivities.probe_node,
                    node,
                    start_to_close_timeout=limit,
                    retry_policy=RetryPolicy(maximum_attempts=2),
                )
                for node in round_.nodes
            )
        )
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=round_events(round_.nodes, list(results), round_)),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RETRY,
        )
        return len(round_.nodes)
