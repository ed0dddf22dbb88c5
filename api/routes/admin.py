"""REST admin API: operations on the platform itself."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from api.services import ServicesDep

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.post("/projections/rebuild", status_code=202)
async def rebuild_projections(services: ServicesDep) -> dict[str, str]:
    """Drop every read model and rebuild it from offset zero of the event log."""
    if services.projector is None:
        raise HTTPException(409, "this API process does not run the projectors")
    services.projector.request_rebuild()
    return {"status": "rebuild requested"}
