"""The Temporal Schedules the platform keeps: made (or brought up to date) at worker start."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from infra.schedules import ensure_schedule
from infra.settings import Settings
from workflows.node_health import SCHEDULE_ID, NodeHealthWorkflow


def node_health_schedule(settings: Settings) -> Schedule:
    federation = settings.federation
    return Schedule(
        action=ScheduleActionStartWorkflow(
            NodeHealthWorkflow.run,
            federation.probe_timeout_seconds,
            id="node-health-round",  # the server appends the round's time
            task_queue=settings.temporal.ingest_task_queue,
            execution_timeout=timedelta(seconds=max(60.0, 10 * federation.probe_timeout_seconds)),
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(seconds=federation.health_interval_seconds))
            ]
        ),
        # A round still probing a slow node when the next is due: skip, never pile up.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_node_health_schedule(client: Client, settings: Settings) -> None:
    """The `node-health` schedule as the settings say: made, updated, or (interval 0) gone."""
    wanted = settings.federation.health_interval_seconds > 0
    await ensure_schedule(client, SCHEDULE_ID, node_health_schedule(settings) if wanted else None)
