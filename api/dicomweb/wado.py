"""WADO-RS retrieve of whole objects (PS3.18 10.4): study, series and instance.

Objects go out as stored unless the Accept header asks for a specific transfer syntax, in
which case they are transcoded (406 with the reason when that is impossible). Study and
series answers are streamed: one instance is read (and transcoded) at a time.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from functools import partial

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import Services, ServicesDep, audited, in_scope, require
from api.dicomweb.media import (
    Choice,
    MediaRange,
    NotAcceptable,
    choose_instance_syntax,
    parse_accept,
)
from api.dicomweb.paths import INSTANCE_PATH
from api.dicomweb.stored import instance_bytes, list_instances, listed_bytes
from infra.auth.permissions import Permission
from infra.dicom.header import read_header
from infra.dicom.transcode import TranscodeError, can_decode, can_encode, transcode
from infra.multipart import build_multipart
from schemas.catalog import CatalogInstance

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/dicom-web",
    tags=["dicomweb"],
    dependencies=[require(Permission.STUDIES_READ), audited("wado"), in_scope()],
)


def _choose_or_406(accept: list[MediaRange], stored: str) -> Choice:
    try:
        return choose_instance_syntax(accept, stored, partial(_can_produce, stored))
    except NotAcceptable as exc:
        raise HTTPException(406, exc.reason) from exc


def _can_produce(stored: str, target: str) -> bool:
    return can_encode(target) and can_decode(stored)


def _encode(data: bytes, stored: str, choice: Choice) -> bytes:
    if choice.transfer_syntax == stored:
        return data
    return transcode(data, choice.transfer_syntax)


@router.get(INSTANCE_PATH)
async def retrieve_instance(
    study: str, series: str, instance: str, request: Request, services: ServicesDep
) -> Response:
    """The instance in multipart/related (default) or bare application/dicom."""
    data = await instance_bytes(services, study, series, instance)
    stored = read_header(data).transfer_syntax_uid
    choice = _choose_or_406(parse_accept(request.headers.get("accept")), stored)
    try:
        body = await asyncio.to_thread(_encode, data, stored, choice)
    except TranscodeError as exc:
        raise HTTPException(406, f"instance {instance}: {exc.reason}") from exc
    content_type = f"application/dicom; transfer-syntax={choice.transfer_syntax}"
    if not choice.multipart:
        return Response(body, media_type=content_type)
    multipart, boundary = build_multipart([(content_type, body)])
    return Response(
        multipart,
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )


@router.get("/studies/{study}")
async def retrieve_study(study: str, request: Request, services: ServicesDep) -> Response:
    """Every instance of the study, multipart/related; type="application/dicom"."""
    return await _retrieve_many(services, request, await list_instances(services, study))


@router.get("/studies/{study}/series/{series}")
async def retrieve_series(
    study: str, series: str, request: Request, services: ServicesDep
) -> Response:
    """Every instance of the series, multipart/related; type="application/dicom"."""
    found = await list_instances(services, study, series)
    return await _retrieve_many(services, request, found)


async def _retrieve_many(
    services: Services, request: Request, instances: list[CatalogInstance]
) -> Response:
    # Decide every instance's syntax before the first byte: a 406 cannot follow a 200.
    accept = parse_accept(request.headers.get("accept"))
    for syntax in {item.transfer_syntax_uid for item in instances}:
        if not _choose_or_406(accept, syntax).multipart:
            raise HTTPException(406, "a study or series can only be sent as multipart/related")
    boundary = uuid.uuid4().hex
    return StreamingResponse(
        _stream_parts(services, instances, accept, boundary),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )


async def _stream_parts(
    services: Services,
    instances: list[CatalogInstance],
    accept: list[MediaRange],
    boundary: str,
) -> AsyncIterator[bytes]:
    for item in instances:
        data = await listed_bytes(services, item)
        if data is None:
            # Listed but gone (deleted meanwhile): the status line is already sent.
            log.warning("instance %s listed but not found; skipped", item.sop_instance_uid)
            continue
        # The bytes, not the listing, say how this version is encoded.
        stored = read_header(data).transfer_syntax_uid
        try:
            choice = choose_instance_syntax(accept, stored, partial(_can_produce, stored))
            body = await asyncio.to_thread(_encode, data, stored, choice)
        except (NotAcceptable, TranscodeError) as exc:
            log.warning("instance %s skipped: %s", item.sop_instance_uid, exc.reason)
            continue
        head = f"--{boundary}\r\nContent-Type: application/dicom; "
        head += f"transfer-syntax={choice.transfer_syntax}\r\n\r\n"
        yield head.encode() + body + b"\r\n"
    yield f"--{boundary}--\r\n".encode()
