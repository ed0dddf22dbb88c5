"""STOW-RS (PS3.18 10.5): store instances sent as multipart/related application/dicom."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from api.deps import Services, ServicesDep
from infra.dicom.header import validate_uid
from infra.dicom.part10 import normalize_part10
from infra.dicom.statuses import CANNOT_UNDERSTAND, OUT_OF_RESOURCES
from infra.multipart import (
    MultipartError,
    MultipartReader,
    Part,
    PartTooLarge,
    parse_content_type,
)
from infra.settings import HttpSettings
from ingest.accept import Origin, Outcome
from ingest.stow_response import (
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

log = logging.getLogger(__name__)

router = APIRouter(prefix="/dicom-web", tags=["dicomweb"])

DICOM_MEDIA_TYPE = "application/dicom"
# Parts are stored concurrently so their event sends share broker round trips...
STOW_CONCURRENCY = 16
# ...but a part's bytes stay in memory until it is accepted: the body is not read further
# while this much is in flight, so memory follows the largest part, not the request.
STOW_IN_FLIGHT_BYTES = 32 * 1024 * 1024
# A refusal before the body was read to its end closes the connection, so the client stops
# sending (RFC 9110 15.5.14) instead of the server draining the rest.
CLOSE = {"Connection": "close"}


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


@dataclass(frozen=True)
class _Refusal:
    """Why the rest of a request was not stored, and whether its body was read to the end."""

    status: int
    reason: str
    body_read: bool = False


class _Intake:
    """Hands each received part to the accept path while the rest of the body streams in.

    Only parts still being accepted are held, so reading waits (and TCP pushes back on the
    client) while STOW_IN_FLIGHT_BYTES or STOW_CONCURRENCY parts are in flight.
    """

    def __init__(self, services: Services, origin: Origin, study: str | None) -> None:
        self.acceptor = services.acceptor
        self.origin = origin
        self.study = study
        self.tasks: list[asyncio.Task[Outcome]] = []
        self._pending: set[asyncio.Task[Outcome]] = set()
        self._bytes = 0

    def submit(self, parts: Iterable[Part]) -> None:
        for part in parts:
            self._bytes += len(part.body)
            task = asyncio.create_task(self._accept(part.body))
            self.tasks.append(task)
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _accept(self, body: bytes) -> Outcome:
        try:
            return await self.acceptor.accept(
                normalize_part10(body), self.origin, expect_study=self.study
            )
        finally:
            self._bytes -= len(body)

    async def room(self) -> None:
        """Return when another chunk of the body may be read."""
        while self._pending and (
            self._bytes >= STOW_IN_FLIGHT_BYTES or len(self._pending) >= STOW_CONCURRENCY
        ):
            await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)

    async def outcomes(self) -> list[Outcome]:
        """Every handed-over part's outcome, in the order the parts arrived."""
        return list(await asyncio.gather(*self.tasks))


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


async def _receive(
    request: Request, reader: MultipartReader, intake: _Intake, limits: HttpSettings
) -> _Refusal | None:
    """Stream the body through the parser into the accept path; why it stopped early, if so."""
    maximum = limits.stow_max_request_bytes
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > maximum:
                return _Refusal(
                    413,
                    f"request body exceeds the STOW-RS maximum of {maximum} bytes "
                    "(PACS_HTTP__STOW_MAX_REQUEST_BYTES); it was not read past the limit",
                )
            intake.submit(reader.feed(chunk))
            reader.check()
            await intake.room()
    except PartTooLarge as exc:
        return _Refusal(
            413,
            f"a part is larger than the STOW-RS maximum of {exc.limit} bytes per instance "
            "(PACS_HTTP__STOW_MAX_PART_BYTES); the body was not read past it",
        )
    except MultipartError as exc:
        return _Refusal(400, f"{exc}; the body was not read past it")
    try:
        reader.close()
    except MultipartError as exc:
        return _Refusal(400, str(exc), body_read=True)
    return None


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
    limits = services.settings.http
    declared = _content_length(request)
    if declared is not None and declared > limits.stow_max_request_bytes:
        # Refused before a byte is read; closing spares the client sending the rest.
        raise HTTPException(
            413,
            f"request body of {declared} bytes exceeds the STOW-RS maximum of "
            f"{limits.stow_max_request_bytes} bytes (PACS_HTTP__STOW_MAX_REQUEST_BYTES); "
            "nothing was stored",
            headers=CLOSE,
        )
    try:
        reader = MultipartReader(boundary, max_part_bytes=limits.stow_max_part_bytes)
    except MultipartError as exc:
        raise HTTPException(400, str(exc)) from exc
    client = request.client.host if request.client else ""
    intake = _Intake(services, Origin(via="stow", client=client), study)
    try:
        refusal = await _receive(request, reader, intake, limits)
    except ClientDisconnect:
        # Nobody to answer; what was handed over still finishes (durable and announced, or
        # not stored at all), as for any sender that hangs up after its data went out.
        outcomes = await intake.outcomes()
        log.info("STOW-RS client went away after %d part(s)", len(outcomes))
        raise
    outcomes = await intake.outcomes()
    if refusal is not None and not outcomes:
        close = None if refusal.body_read else CLOSE
        raise HTTPException(refusal.status, f"{refusal.reason}; nothing was stored", close)
    base = str(request.base_url).rstrip("/") + "/dicom-web"
    response: dict[str, Any] = {}
    stored = [o for o in outcomes if o.ok]
    failed = [_failed(o) for o in outcomes if not o.ok]
    status = stow_status(outcomes)
    headers: dict[str, str] = {}
    if refusal is not None:
        # Parts before the refusal went through the accept path: they are reported as for
        # any STOW (stored ones are durable and announced); the rest is one failure.
        status = refusal.status
        code = OUT_OF_RESOURCES if refusal.status == 413 else CANNOT_UNDERSTAND
        remainder = f"{refusal.reason}; this part and any after it were not stored"
        failed.append(_failed(Outcome(code, remainder)))
        quoted = remainder.replace("\\", "/").replace('"', "'")
        headers["Warning"] = f'299 pacs "{quoted}"'
        if not refusal.body_read:
            headers.update(CLOSE)
    studies = {o.header.study_instance_uid for o in stored if o.header}
    if len(studies) == 1:
        response[RETRIEVE_URL] = element("UR", f"{base}/studies/{studies.pop()}")
    if stored:
        response[REFERENCED_SOP_SEQUENCE] = element("SQ", *(_referenced(base, o) for o in stored))
    if failed:
        response[FAILED_SOP_SEQUENCE] = element("SQ", *failed)
    return JSONResponse(
        response, status_code=status, headers=headers, media_type="application/dicom+json"
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
