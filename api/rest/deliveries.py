"""Routing deliveries (admin only): each destination's queue, dead letters and state, read
from its RouteDeliveryWorkflow (a query); pause, resume and replay its dead letters."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Services, ServicesDep, audit, audited, require
from infra.auth.permissions import Permission
from schemas.nodes import NODE_NAME_PATTERN
from schemas.routing import DeliveryState, Via
from workflows.route_delivery import RouteDeliveryWorkflow, workflow_id

router = APIRouter(
    prefix="/api/routing/deliveries", tags=["routing"], dependencies=[require(Permission.ADMIN)]
)

Destination = Annotated[str, Path(pattern=NODE_NAME_PATTERN)]
ViaQuery = Annotated[Via, Query()]


async def _handle(
    services: Services, destination: str, via: Via
) -> WorkflowHandle[RouteDeliveryWorkflow, None]:
    client = await services.temporal()
    return client.get_workflow_handle_for(RouteDeliveryWorkflow.run, workflow_id(destination, via))


async def _state(handle: WorkflowHandle[RouteDeliveryWorkflow, None], name: str) -> DeliveryState:
    try:
        return await handle.query(RouteDeliveryWorkflow.state)
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"nothing was ever routed to {name}") from exc
        raise HTTPException(502, f"Temporal: {exc.message}") from exc


def _audit_shown(request: Request, states: list[DeliveryState]) -> None:
    """Dead letters name studies (and their instances): showing them is an access to each
    study, in the audit trail as any study read."""
    shown = sorted({d.item.instance.study_instance_uid for s in states for d in s.dead_letters})
    request.state.audit_subjects = [{"study_instance_uid": uid} for uid in shown]


@router.get("", response_model=list[DeliveryState], dependencies=[audited("deliveries")])
async def list_deliveries(request: Request, services: ServicesDep) -> list[DeliveryState]:
    """Every destination that has a delivery workflow running."""
    client = await services.temporal()
    query = "WorkflowType = 'RouteDeliveryWorkflow' AND ExecutionStatus = 'Running'"
    ids = [e.id async for e in client.list_workflows(query)]
    handles: list[WorkflowHandle[RouteDeliveryWorkflow, None]] = [
        client.get_workflow_handle(i, result_type=type(None)) for i in ids
    ]
    states = await asyncio.gather(
        *(h.query(RouteDeliveryWorkflow.state) for h in handles), return_exceptions=True
    )
    found = [s for s in states if isinstance(s, DeliveryState)]
    _audit_shown(request, found)
    return sorted(found, key=lambda s: (s.destination, s.via))


@router.get("/{destination}", response_model=DeliveryState, dependencies=[audited("deliveries")])
async def get_delivery(
    destination: Destination, request: Request, services: ServicesDep, via: ViaQuery = "dimse"
) -> DeliveryState:
    state = await _state(await _handle(services, destination, via), destination)
    _audit_shown(request, [state])
    return state


@router.post("/{destination}/{action}", response_model=DeliveryState)
async def steer_delivery(
    destination: Destination,
    action: Literal["pause", "resume", "replay"],
    request: Request,
    services: ServicesDep,
    via: ViaQuery = "dimse",
) -> DeliveryState:
    """`pause` holds the queue (nothing is sent, everything is kept), `resume` sends again,
    `replay` puts the dead letters back at the head of the queue."""
    handle = await _handle(services, destination, via)
    await _state(handle, destination)  # 404 first when there is no such delivery
    signal = {
        "pause": RouteDeliveryWorkflow.pause,
        "resume": RouteDeliveryWorkflow.resume,
        "replay": RouteDeliveryWorkflow.replay,
    }[action]
    await handle.signal(signal)
    audit(request, f"routing-{action}", "success", f"{destination} via {via}")
    return await _state(handle, destination)
