"""REST admin API: operations on the platform itself."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import ProjectorDep, require
from infra.auth.permissions import Permission

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[require(Permission.ADMIN)])


class ProjectionStatus(BaseModel):
    """Where a read model stands on the log."""

    name: str
    rebuilds: int
    positions: dict[int, int]


@router.get("/projections", response_model=list[ProjectionStatus])
async def projection_status(projector: ProjectorDep) -> list[ProjectionStatus]:
    """Each read model with the last log offset it reflects, per partition."""
    positions = await asyncio.to_thread(projector.positions)
    return [
        ProjectionStatus(name=name, rebuilds=projector.rebuilds_completed, positions=where)
        for name, where in positions.items()
    ]


class TableDigest(BaseModel):
    """A read-model table's size and content hash: equal digests, equal tables."""

    rows: int
    checksum: str


@router.get("/projections/checksums", response_model=dict[str, TableDigest])
async def projection_checksums(projector: ProjectorDep) -> dict[str, TableDigest]:
    """Row count and an order-independent hash of each read-model table, to verify that a
    rebuild (or another node) holds exactly the same data."""
    digests = await asyncio.to_thread(projector.checksums)
    return {table: TableDigest.model_validate(d) for table, d in digests.items()}


@router.post("/projections/rebuild", status_code=202)
async def rebuild_projections(projector: ProjectorDep) -> dict[str, str]:
    """Drop every read model and rebuild it from offset zero of the event log."""
    projector.request_rebuild()
    return {"status": "rebuild requested"}
