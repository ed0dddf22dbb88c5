"""STOW-RS (PS3.18 10.5) over HTTP: the route; the intake itself is ingest/stow.py."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from api.deps import ServicesDep, require
from api.dicomweb.paths import PREFIX, dicomweb_root
from infra.auth.permissions import Permission
from ingest.stow import StowRefused, StowRequest, store

router = APIRouter(
    prefix=PREFIX, tags=["dicomweb"], dependencies=[require(Permission.STUDIES_STORE)]
)


async def _store(request: Request, services: ServicesDep, study: str | None) -> JSONResponse:
    length = request.headers.get("content-length", "")
    stow = StowRequest(
        content_type=request.headers.get("content-type", ""),
        content_length=int(length) if length.isdigit() else None,
        study=study,
        client=request.client.host if request.client else "",
        root=dicomweb_root(request),
    )
    try:
        answer = await store(stow, request.stream(), services.acceptor, services.settings.http)
    except StowRefused as exc:
        headers = {"Connection": "close"} if exc.close else None
        raise HTTPException(exc.status, exc.reason, headers) from exc
    return JSONResponse(
        answer.body,
        status_code=answer.status,
        headers=answer.headers,
        media_type="application/dicom+json",
    )


@router.post("/studies")
async def store_instances(request: Request, services: ServicesDep) -> JSONResponse:
    """Store instances of any study."""
    return await _store(request, services, None)


@router.post("/studies/{study_instance_uid}")
async def store_instances_in_study(
    study_instance_uid: str, request: Request, services: ServicesDep
) -> JSONResponse:
    """Store instances that must all belong to the given study."""
    return await _store(request, services, study_instance_uid)
