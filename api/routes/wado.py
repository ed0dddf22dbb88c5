"""WADO-RS instance retrieve (PS3.18 10.4), straight from the archive or the landing area.

Works without any read model: the archive key is derived from the UIDs, and an instance not
yet archived is found in landing by its UIDs too.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from api.multipart import build_multipart, parse_content_type
from api.services import Services, ServicesDep
from ingest import stored_instances
from ingest.header import read_header, validate_uid

router = APIRouter(prefix="/dicom-web", tags=["dicomweb"])


def load_instance(services: Services, study: str, series: str, sop: str) -> bytes | None:
    """The newest stored version of an instance (landing first, then the archive)."""
    return stored_instances.load_instance(services.landing, services.archive, study, series, sop)


def _wants_single_part(accept: str) -> bool:
    """True when the client asked for bare application/dicom rather than multipart."""
    for item in accept.split(","):
        media_type, _ = parse_content_type(item.strip())
        if media_type == "multipart/related":
            return False
        if media_type == "application/dicom":
            return True
    return False


def _requested_syntax(accept: str) -> str | None:
    for item in accept.split(","):
        _, params = parse_content_type(item.strip())
        if "transfer-syntax" in params:
            return params["transfer-syntax"]
    return None


@router.get(
    "/studies/{study_instance_uid}/series/{series_instance_uid}/instances/{sop_instance_uid}"
)
async def retrieve_instance(
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    request: Request,
    services: ServicesDep,
) -> Response:
    """The instance as stored, in multipart/related (default) or bare application/dicom."""
    for name, value in (
        ("StudyInstanceUID", study_instance_uid),
        ("SeriesInstanceUID", series_instance_uid),
        ("SOPInstanceUID", sop_instance_uid),
    ):
        if problem := validate_uid(name, value):
            raise HTTPException(400, problem)
    data = await asyncio.to_thread(
        load_instance, services, study_instance_uid, series_instance_uid, sop_instance_uid
    )
    if data is None:
        raise HTTPException(
            404, f"instance {sop_instance_uid} not found in study {study_instance_uid}"
        )
    accept = request.headers.get("accept", "*/*")
    stored_syntax = read_header(data).transfer_syntax_uid
    wanted = _requested_syntax(accept)
    if wanted not in (None, "*", stored_syntax):
        raise HTTPException(
            406, f"instance is stored as {stored_syntax}; transcoding to {wanted} is not available"
        )
    part_type = f"application/dicom; transfer-syntax={stored_syntax}"
    if _wants_single_part(accept):
        return Response(data, media_type=part_type)
    body, boundary = build_multipart([(part_type, data)])
    return Response(
        body,
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )
