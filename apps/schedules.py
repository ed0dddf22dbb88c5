"""The Temporal Schedules the platform keeps: made (or brought up to date) at worker start."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from infra.settings import Settings
from workflows.node_health import SCHEDULE_ID, NodeHealthWorkflow

log = logging.getLogger(__name__)


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
    handle = client.get_schedule_handle(SCHEDULE_ID)
    if settings.federation.health_interval_seconds <= 0:
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
        return
    schedule = node_health_schedule(settings)
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
        log.info("made schedule %s", SCHEDULE_ID)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
