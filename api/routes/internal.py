"""Catalog access for our own DIMSE gateways, which cannot open the embedded ClickHouse.

Not a public API: bound to the same loopback address as everything else, shapes may change.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.routes.qido import catalog_of, search_catalog
from api.services import ServicesDep
from infra.catalog.attributes import Level
from infra.catalog.matching import QueryError
from infra.catalog.search import MAX_RESULTS, Search
from schemas.catalog import CatalogInstance, InstanceQuery

router = APIRouter(prefix="/api/internal", tags=["internal"], include_in_schema=False)


class FindRequest(BaseModel):
    """A C-FIND identifier as match keys (keyword → DICOM string value) and return keys."""

    level: str
    filters: dict[str, str] = {}
    return_keys: list[str] = []
    limit: int = Field(default=MAX_RESULTS, ge=0, le=MAX_RESULTS)


@router.post("/instances", response_model=list[CatalogInstance])
async def list_instances(query: InstanceQuery, services: ServicesDep) -> list[CatalogInstance]:
    """Stored instances for a retrieve (C-MOVE / C-GET)."""
    catalog = catalog_of(services)
    try:
        return await asyncio.to_thread(catalog.instances, query)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.post("/find")
async def find(request: FindRequest, services: ServicesDep) -> JSONResponse:
    """Matches as DICOM JSON datasets, one per entity at the requested level."""
    catalog = catalog_of(services)
    try:
        level = Level.parse(request.level)
        search = Search(level, request.filters, request.return_keys, request.limit, defaults=False)
        result = await search_catalog(catalog, search)
    except (QueryError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc
    # Straight to JSON: C-FIND latency is what this endpoint exists for.
    return JSONResponse(result.rows)
