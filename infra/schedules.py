"""Making a Temporal Schedule be as wanted: created, brought up to date, or removed."""

from __future__ import annotations

import logging

from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)


async def ensure_schedule(client: Client, schedule_id: str, schedule: Schedule | None) -> None:
    """`schedule` under `schedule_id`, made or replaced; None: no such schedule."""
    handle = client.get_schedule_handle(schedule_id)
    if schedule is None:
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
        return
    try:
        await client.create_schedule(schedule_id, schedule)
        log.info("made schedule %s", schedule_id)
    except ScheduleAlreadyRunningError:

        def replace(found: ScheduleUpdateInput) -> ScheduleUpdate:
            # Paused by an operator (/api/schedules) stays paused across restarts.
            schedule.state = found.description.schedule.state
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
