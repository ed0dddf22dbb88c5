"""WADO-URI (PS3.18 9): `GET /wado?requestType=WADO&studyUID=&seriesUID=&objectUID=`.

The older single-object URL many viewers and reporting systems still build: the object as
application/dicom (optionally transcoded), or one frame rendered as JPEG/PNG.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from api.deps import ServicesDep, audited, in_scope, require
from api.dicomweb.media import DICOM
from api.dicomweb.stored import instance_bytes
from infra.auth.permissions import Permission
from infra.dicom.header import read_header
from infra.dicom.pixels import (
    ImageFormat,
    PixelError,
    RenderOptions,
    Viewport,
    Window,
    render_frames,
)
from infra.dicom.transcode import TranscodeError, can_decode, can_encode, transcode

router = APIRouter(
    tags=["wado-uri"],
    dependencies=[require(Permission.STUDIES_READ), audited("wado-uri"), in_scope()],
)


@router.get("/wado")
async def wado_uri(
    services: ServicesDep,
    request_type: Annotated[str | None, Query(alias="requestType")] = None,
    study: Annotated[str | None, Query(alias="studyUID")] = None,
    series: Annotated[str | None, Query(alias="seriesUID")] = None,
    instance: Annotated[str | None, Query(alias="objectUID")] = None,
    content_type: Annotated[str | None, Query(alias="contentType")] = None,
    transfer_syntax: Annotated[str | None, Query(alias="transferSyntax")] = None,
    frame_number: Annotated[int | None, Query(alias="frameNumber")] = None,
    rows: Annotated[int | None, Query()] = None,
    columns: Annotated[int | None, Query()] = None,
    window_center: Annotated[float | None, Query(alias="windowCenter")] = None,
    window_width: Annotated[float | None, Query(alias="windowWidth")] = None,
    image_quality: Annotated[int | None, Query(alias="imageQuality")] = None,
) -> Response:
    """One object, as DICOM or rendered (JPEG default for images, PS3.18 9.1.2.1.5)."""
    if request_type != "WADO":
        raise HTTPException(400, "requestType must be WADO")
    if not study or not series or not instance:
        raise HTTPException(400, "studyUID, seriesUID and objectUID are all required")
    data = await instance_bytes(services, study, series, instance)
    wanted = _content_type(content_type)
    if wanted == DICOM:
        return await _as_dicom(data, transfer_syntax)
    if (window_center is None) != (window_width is None):
        raise HTTPException(400, "windowCenter and windowWidth go together")
    if window_width is not None and window_width < 1:
        raise HTTPException(400, "windowWidth must be at least 1")
    if frame_number is not None and frame_number < 1:
        raise HTTPException(400, "frameNumber starts at 1")
    if image_quality is not None and not 1 <= image_quality <= 100:
        raise HTTPException(400, "imageQuality must be between 1 and 100")
    if (rows is not None and rows < 1) or (columns is not None and columns < 1):
        raise HTTPException(400, "rows and columns must be positive")
    viewport = None
    if rows or columns:
        # One dimension alone bounds that side only; the aspect ratio is kept either way.
        viewport = Viewport(columns or 65535, rows or 65535)
    window = None
    if window_center is not None and window_width is not None:
        window = Window(window_center, window_width)
    options = RenderOptions(
        format=ImageFormat(wanted), window=window, viewport=viewport, quality=image_quality or 90
    )
    try:
        (image,) = await asyncio.to_thread(render_frames, data, [frame_number or 1], options)
    except PixelError as exc:
        if content_type is None and exc.missing and frame_number is None:
            return await _as_dicom(data, transfer_syntax)  # the default for non-images
        status = 404 if exc.missing else 406
        raise HTTPException(status, f"object {instance}: {exc.reason}") from exc
    return Response(image, media_type=wanted)


def _content_type(requested: str | None) -> str:
    if requested is None or not requested.strip():
        return ImageFormat.JPEG.value
    for item in requested.split(","):
        media_type = item.split(";")[0].strip().lower()
        if media_type in (DICOM, ImageFormat.JPEG.value, ImageFormat.PNG.value):
            return media_type
        if media_type in ("*/*", "image/*"):
            return ImageFormat.JPEG.value
    raise HTTPException(
        400, f"contentType {requested!r}: offered are application/dicom, image/jpeg, image/png"
    )


async def _as_dicom(data: bytes, transfer_syntax: str | None) -> Response:
    stored = read_header(data).transfer_syntax_uid
    target = transfer_syntax or stored
    if target != stored:
        if not (can_encode(target) and can_decode(stored)):
            raise HTTPException(
                406, f"the object is stored as {stored} and cannot be sent as {target}"
            )
        try:
            data = await asyncio.to_thread(transcode, data, target)
        except TranscodeError as exc:
            raise HTTPException(406, exc.reason) from exc
    return Response(data, media_type=DICOM)
