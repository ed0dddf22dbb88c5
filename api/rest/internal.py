"""Catalog access for our own DIMSE gateways, which cannot open the embedded ClickHouse.

Not a public API: bound to the same loopback address as everything else, shapes may change.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import CatalogDep, ServicesDep, nodes_of, require
from infra.auth.permissions import Permission
from infra.readmodels.catalog.attributes import Level
from infra.readmodels.catalog.search import MAX_RESULTS, Search
from infra.readmodels.matching import QueryError
from schemas.catalog import CatalogInstance, InstanceQuery
from schemas.nodes import Node

router = APIRouter(
    prefix="/api/internal",
    tags=["internal"],
    include_in_schema=False,
    dependencies=[require(Permission.INTERNAL)],
)

# How long a caught-up listing waits for the projector before it says "not now".
CATCH_UP_TIMEOUT_SECONDS = 5.0


class FindRequest(BaseModel):
    """A C-FIND identifier as match keys (keyword → DICOM string value) and return keys."""

    level: str
    filters: dict[str, str] = {}
    return_keys: list[str] = []
    limit: int = Field(default=MAX_RESULTS, ge=0, le=MAX_RESULTS)
    offset: int = Field(default=0, ge=0)


@router.post("/instances", response_model=list[CatalogInstance])
async def list_instances(
    query: InstanceQuery, catalog: CatalogDep, services: ServicesDep
) -> list[CatalogInstance]:
    """Stored instances for a retrieve (C-MOVE / C-GET), or for a commitment check."""
    if query.caught_up and (
        services.projector is None
        or not await services.projector.wait_caught_up(
            CATCH_UP_TIMEOUT_SECONDS, query.log_positions
        )
    ):
        raise HTTPException(503, "the catalog has not caught up with the event log yet")
    try:
        return await asyncio.to_thread(catalog.instances, query)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.post("/find")
async def find(request: FindRequest, catalog: CatalogDep) -> JSONResponse:
    """Matches as DICOM JSON datasets, one per entity at the requested level."""
    try:
        level = Level.parse(request.level)
        search = Search(
            level,
            request.filters,
            request.return_keys,
            request.limit,
            request.offset,
            defaults=False,
        )
        result = await catalog.search_soon(search)
    except (QueryError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc
    # Straight to JSON: C-FIND latency is what this endpoint exists for.
    return JSONResponse(result.rows)


@router.get("/nodes", response_model=list[Node])
async def list_nodes(services: ServicesDep) -> list[Node]:
    """The node registry, for the gateway's association checks."""
    return nodes_of(services).nodes()
