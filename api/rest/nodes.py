"""The DICOM node registry (admin only): every remote AE, where it is, what it may do here.

Each change is an event; the gateway picks it up within a few seconds (it refreshes its copy
of the registry), so a node added here may associate shortly after.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.deps import CallerDep, ServicesDep, nodes_of, publish_visible, require
from infra.auth.permissions import Permission
from schemas.events import NodeDeleted, NodeSaved
from schemas.nodes import NODE_NAME_PATTERN, Node, NodeBody

router = APIRouter(prefix="/api/nodes", tags=["nodes"], dependencies=[require(Permission.ADMIN)])

NamePath = Annotated[str, Path(pattern=NODE_NAME_PATTERN)]


@router.get("", response_model=list[Node])
async def list_nodes(services: ServicesDep) -> list[Node]:
    return nodes_of(services).nodes()


@router.get("/{name}", response_model=Node)
async def get_node(name: NamePath, services: ServicesDep) -> Node:
    node = nodes_of(services).node(name)
    if node is None:
        raise HTTPException(404, f"no node {name}")
    return node


@router.put("/{name}", response_model=Node)
async def save_node(
    name: NamePath, body: NodeBody, services: ServicesDep, caller: CallerDep
) -> Node:
    """Register a node or replace it."""
    registry = nodes_of(services)
    saved = Node(name=name, **body.model_dump())
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
