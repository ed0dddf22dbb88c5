"""The DICOM node registry (admin only): every remote AE, where it is, what it may do here,
and whether it answers.

Each change is an event; the gateway picks it up within a few seconds (it refreshes its copy
of the registry), so a node added here may associate shortly after. Health comes from the
`node-health` schedule's rounds (workflows/node_health.py); `POST /api/nodes/check` runs one
now.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from api.deps import CallerDep, ServicesDep, nodes_of, publish_visible, require
from infra.auth.permissions import Permission
from infra.auth.sealing import Sealer
from schemas.events import NodeDeleted, NodeSaved
from schemas.nodes import NODE_NAME_PATTERN, Node, NodeInput, NodeStatusChange, NodeView
from workflows.node_health import NodeHealthWorkflow

router = APIRouter(prefix="/api/nodes", tags=["nodes"], dependencies=[require(Permission.ADMIN)])

NamePath = Annotated[str, Path(pattern=NODE_NAME_PATTERN)]


class HealthRound(BaseModel):
    workflow_id: str
    nodes_checked: int


@router.get("", response_model=list[NodeView])
async def list_nodes(services: ServicesDep) -> list[NodeView]:
    registry = nodes_of(services)
    return [NodeView(**n.model_dump(), health=registry.health(n.name)) for n in registry.nodes()]


@router.post("/check", response_model=HealthRound)
async def check_nodes(services: ServicesDep) -> HealthRound:
    """Check every node now (one round of the health schedule) and answer once it is done;
    the results show in GET /api/nodes a moment later, as the round's events are applied."""
    settings = services.settings
    workflow_id = f"node-health-now:{uuid.uuid4().hex}"
    client = await services.temporal()
    handle = await client.start_workflow(
        NodeHealthWorkflow.run,
        settings.federation.probe_timeout_seconds,
        id=workflow_id,
        task_queue=settings.temporal.ingest_task_queue,
    )
    limit = 4 * settings.federation.probe_timeout_seconds + 60
    try:
        checked = await asyncio.wait_for(handle.result(), timeout=limit)
    except TimeoutError:
        raise HTTPException(504, f"round {workflow_id} still running after {limit:.0f} s") from None
    return HealthRound(workflow_id=workflow_id, nodes_checked=checked)


@router.get("/{name}", response_model=NodeView)
async def get_node(name: NamePath, services: ServicesDep) -> NodeView:
    """The node, with its health: status, since when, last success, round trip, probes."""
    registry = nodes_of(services)
    node = registry.node(name)
    if node is None:
        raise HTTPException(404, f"no node {name}")
    return NodeView(**node.model_dump(), health=registry.health(name))


@router.get("/{name}/history", response_model=list[NodeStatusChange])
async def node_history(
    name: NamePath,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[NodeStatusChange]:
    """The node's health status changes, newest first."""
    registry = nodes_of(services)
    if registry.node(name) is None:
        raise HTTPException(404, f"no node {name}")
    return await asyncio.to_thread(registry.history, name, limit)


@router.put("/{name}", response_model=Node)
async def save_node(
    name: NamePath, body: NodeInput, services: ServicesDep, caller: CallerDep
) -> Node:
    """Register a node or replace it. An `api_key` given is sealed before it is kept;
    without one, the node keeps the key it had."""
    registry = nodes_of(services)
    fields = body.model_dump(exclude={"api_key"})
    if body.api_key is not None:
        secret = body.api_key.get_secret_value()
        fields["api_key_sealed"] = Sealer.of(services.settings).seal(secret) if secret else ""
    elif not body.api_key_sealed and (before := registry.node(name)) is not None:
        fields["api_key_sealed"] = before.api_key_sealed
    saved = Node(name=name, **fields)
    clash = [n.name for n in registry.nodes() if n.ae_title == saved.ae_title and n.name != name]
    if clash:
        raise HTTPException(409, f"AE title {saved.ae_title} is already node {clash[0]}")
    await publish_visible(services, NodeSaved(node=saved, actor=caller.name))
    return saved


@router.delete("/{name}", status_code=204)
async def delete_node(name: NamePath, services: ServicesDep, caller: CallerDep) -> None:
    if nodes_of(services).node(name) is None:
        raise HTTPException(404, f"no node {name}")
    await publish_visible(services, NodeDeleted(name=name, actor=caller.name))
