"""REST admin API: operations on the platform itself."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from api.services import ServicesDep

router = APIRouter(prefix="/api/admin", tags=["admin"])


class ProjectionStatus(BaseModel):
    """Where a read model stands on the log."""

    name: str
    rebuilds: int
    positions: dict[int, int]


@router.get("/projections", response_model=list[ProjectionStatus])
async def projection_status(services: ServicesDep) -> list[ProjectionStatus]:
    """Each read model with the last log offset it reflects, per partition."""
    if services.projector is None:
        raise HTTPException(409, "this API process does not run the projectors")
    projector = services.projector
    positions = await asyncio.to_thread(projector.positions)
    return [
        ProjectionStatus(name=name, rebuilds=projector.rebuilds_completed, positions=where)
        for name, where in positions.items()
    ]


@router.post("/projections/rebuild", status_code=202)
async def rebuild_projections(services: ServicesDep) -> dict[str, str]:
    """Drop every read model and rebuild it from offset zero of the event log."""
    if services.projector is None:
        raise HTTPException(409, "this API process does not run the projectors")
    services.projector.request_rebuild()
    return {"status": "rebuild requested"}
