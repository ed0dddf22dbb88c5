"""The platform's Temporal Schedules (`node-health`, `fixity`, `sync:<relation>`), admin
only: list them with their next and recent runs, pause and resume them, run one now, and
change an interval. Each change is audited. Every run is a workflow in the jobs API
(`/api/jobs?schedule=<id>` lists a schedule's runs as far back as Temporal keeps them).

A schedule made from settings (`node-health`, `fixity`) is brought back to its settings'
interval when the worker starts; a pause stays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ServicesDep, audited, require
from infra.auth.permissions import Permission

router = APIRouter(
    prefix="/api/schedules", tags=["schedules"], dependencies=[require(Permission.ADMIN)]
)
ScheduleId = Annotated[str, Path(max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")]


class ScheduleRun(BaseModel):
    scheduled_at: datetime
    started_at: datetime
    workflow_id: str


class ScheduleView(BaseModel):
    schedule_id: str
    workflow_type: str
    paused: bool
    note: str  # why it was paused (or resumed)
    interval_seconds: list[float]
    cron: list[str]
    next_runs: list[datetime]  # the next few, while not paused
    recent_runs: list[ScheduleRun]  # the last ones Temporal keeps (up to 10)
    running: list[str]  # workflow ids of runs not finished
    runs: int  # started in all
    skipped_overlap: int  # not started: the previous run was still going
    jobs_url: str


class ScheduleNote(BaseModel):
    note: str = Field(default="", max_length=500)


class ScheduleChange(BaseModel):
    interval_seconds: float = Field(ge=1, le=366 * 24 * 3600)


def _view(found: ScheduleDescription) -> ScheduleView:
    schedule, info = found.schedule, found.info
    action = schedule.action
    workflow_type = str(action.workflow) if isinstance(action, ScheduleActionStartWorkflow) else ""
    return ScheduleView(
        schedule_id=found.id,
        workflow_type=workflow_type,
        paused=schedule.state.paused,
        note=schedule.state.note or "",
        interval_seconds=[i.every.total_seconds() for i in schedule.spec.intervals],
        cron=list(schedule.spec.cron_expressions),
        next_runs=[] if schedule.state.paused else info.next_action_times[:5],
        recent_runs=[
            ScheduleRun(
                scheduled_at=r.scheduled_at,
                started_at=r.started_at,
                workflow_id=r.action.workflow_id,
            )
            for r in info.recent_actions
            if isinstance(r.action, ScheduleActionExecutionStartWorkflow)
        ],
        running=[
            r.workflow_id
            for r in info.running_actions
            if isinstance(r, ScheduleActionExecutionStartWorkflow)
        ],
        runs=info.num_actions,
        skipped_overlap=info.num_actions_skipped_overlap,
        jobs_url=f"/api/jobs?schedule={found.id}",
    )


async def _describe(client: Client, schedule_id: str) -> ScheduleDescription:
    try:
        return await client.get_schedule_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no schedule {schedule_id}") from exc
        raise HTTPException(502, f"Temporal: {exc.message}") from exc


@router.get("", response_model=list[ScheduleView])
async def list_schedules(services: ServicesDep) -> list[ScheduleView]:
    """Every schedule, by id."""
    client = await services.temporal()
    ids = sorted([s.id async for s in await client.list_schedules()])
    return [_view(await _describe(client, i)) for i in ids]


@router.get("/{schedule_id}", response_model=ScheduleView)
async def get_schedule(schedule_id: ScheduleId, services: ServicesDep) -> ScheduleView:
    return _view(await _describe(await services.temporal(), schedule_id))


async def _change(
    services: ServicesDep,
    schedule_id: str,
    change: Callable[[ScheduleHandle], Awaitable[None]],
) -> ScheduleView:
    """Apply `change` to an existing schedule (404 if none); the schedule as it is after."""
    client = await services.temporal()
    await _describe(client, schedule_id)
    await change(client.get_schedule_handle(schedule_id))
    return _view(await _describe(client, schedule_id))


@router.post(
    "/{schedule_id}/pause", response_model=ScheduleView, dependencies=[audited("schedule-pause")]
)
async def pause_schedule(
    schedule_id: ScheduleId, body: ScheduleNote, request: Request, services: ServicesDep
) -> ScheduleView:
    note = body.note or f"paused by {request.state.caller.name}"
    return await _change(services, schedule_id, lambda handle: handle.pause(note=note))


@router.post(
    "/{schedule_id}/resume", response_model=ScheduleView, dependencies=[audited("schedule-resume")]
)
async def resume_schedule(
    schedule_id: ScheduleId, body: ScheduleNote, request: Request, services: ServicesDep
) -> ScheduleView:
    note = body.note or f"resumed by {request.state.caller.name}"
    return await _change(services, schedule_id, lambda handle: handle.unpause(note=note))


@router.post(
    "/{schedule_id}/trigger",
    status_code=202,
    response_model=ScheduleView,
    dependencies=[audited("schedule-trigger")],
)
async def trigger_schedule(schedule_id: ScheduleId, services: ServicesDep) -> ScheduleView:
    """Run it now (also while paused); the run shows in `recent_runs` and the jobs API."""
    return await _change(services, schedule_id, lambda handle: handle.trigger())


@router.patch(
    "/{schedule_id}", response_model=ScheduleView, dependencies=[audited("schedule-change")]
)
async def change_schedule(
    schedule_id: ScheduleId, body: ScheduleChange, services: ServicesDep
) -> ScheduleView:
    """A new interval, from now on."""

    def every(found: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = found.description.schedule
        schedule.spec = ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=body.interval_seconds))]
        )
        return ScheduleUpdate(schedule=schedule)

    return await _change(services, schedule_id, lambda handle: handle.update(every))
