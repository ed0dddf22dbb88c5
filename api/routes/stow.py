"""STOW-RS (PS3.18 10.5): store instances sent as multipart/related application/dicom."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from api.dicomjson import (
    ERROR_COMMENT,
    FAILED_SOP_SEQUENCE,
    FAILURE_REASON,
    REFERENCED_SOP_CLASS_UID,
    REFERENCED_SOP_INSTANCE_UID,
    REFERENCED_SOP_SEQUENCE,
    RETRIEVE_URL,
    JsonDataset,
    element,
)
from api.multipart import MultipartError, parse_content_type, split_multipart
from api.services import ServicesDep
from ingest.accept import Origin, Outcome
from ingest.header import validate_uid
from ingest.part10 import normalize_part10
from ingest.statuses import OUT_OF_RESOURCES

router = APIRouter(prefix="/dicom-web", tags=["dicomweb"])

DICOM_MEDIA_TYPE = "application/dicom"
# Parts are stored concurrently so their event sends share broker round trips.
STOW_CONCURRENCY = 16


def _instance_url(base: str, outcome: Outcome) -> str:
    h = outcome.header
    assert h is not None
    return (
        f"{base}/studies/{h.study_instance_uid}/series/{h.series_instance_uid}"
        f"/instances/{h.sop_instance_uid}"
    )


def _referenced(base: str, outcome: Outcome) -> JsonDataset:
    h = outcome.header
    assert h is not None
    return {
        REFERENCED_SOP_CLASS_UID: element("UI", h.sop_class_uid),
        REFERENCED_SOP_INSTANCE_UID: element("UI", h.sop_instance_uid),
        RETRIEVE_URL: element("UR", _instance_url(base, outcome)),
    }


def _failed(outcome: Outcome) -> JsonDataset:
    item: JsonDataset = {FAILURE_REASON: element("US", outcome.status)}
    if outcome.header is not None:
        item[REFERENCED_SOP_CLASS_UID] = element("UI", outcome.header.sop_class_uid)
        item[REFERENCED_SOP_INSTANCE_UID] = element("UI", outcome.header.sop_instance_uid)
    if outcome.reason:
        item[ERROR_COMMENT] = element("LO", outcome.reason)
    return item


def stow_status(outcomes: list[Outcome]) -> int:
    """200 all stored, 202 some stored, 409 none stored, 503 none stored for lack of resources."""
    stored = sum(o.ok for o in outcomes)
    if stored == len(outcomes):
        return 200
    if stored:
        return 202
    if all(o.status == OUT_OF_RESOURCES for o in outcomes):
        return 503
    return 409


async def _store(request: Request, services: ServicesDep, study: str | None) -> JSONResponse:
    media_type, params = parse_content_type(request.headers.get("content-type", ""))
    if media_type != "multipart/related":
        raise HTTPException(415, f"expected multipart/related, got {media_type or 'nothing'}")
    part_type = params.get("type", DICOM_MEDIA_TYPE).lower()
    if part_type != DICOM_MEDIA_TYPE:
        raise HTTPException(
            415, f'only type="{DICOM_MEDIA_TYPE}" parts are accepted, got {part_type}'
        )
    boundary = params.get("boundary")
    if not boundary:
        raise HTTPException(400, "multipart/related Content-Type has no boundary parameter")
    if study is not None and (problem := validate_uid("StudyInstanceUID", study)):
        raise HTTPException(400, problem)
    try:
        parts = split_multipart(await request.body(), boundary)
    except MultipartError as exc:
        raise HTTPException(400, str(exc)) from exc
    client = request.client.host if request.client else ""
    origin = Origin(via="stow", client=client)
    limiter = asyncio.Semaphore(STOW_CONCURRENCY)

    async def one(body: bytes) -> Outcome:
        async with limiter:
            part10 = normalize_part10(body)
            return await services.acceptor.accept(part10, origin, expect_study=study)

    outcomes = await asyncio.gather(*(one(p.body) for p in parts))
    base = str(request.base_url).rstrip("/") + "/dicom-web"
    response: dict[str, Any] = {}
    stored = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    studies = {o.header.study_instance_uid for o in stored if o.header}
    if len(studies) == 1:
        response[RETRIEVE_URL] = element("UR", f"{base}/studies/{studies.pop()}")
    if stored:
        response[REFERENCED_SOP_SEQUENCE] = element("SQ", *(_referenced(base, o) for o in stored))
    if failed:
        response[FAILED_SOP_SEQUENCE] = element("SQ", *(_failed(o) for o in failed))
    return JSONResponse(
        response, status_code=stow_status(list(outcomes)), media_type="application/dicom+json"
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
