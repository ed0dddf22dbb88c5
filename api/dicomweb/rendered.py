"""WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.3 and 10.4.1.1.6, 8.3.5).

JPEG by default, PNG when the Accept header prefers it. Query parameters: `window=center,
width[,linear|linear-exact|sigmoid]`, `viewport=vw,vh[,sx,sy,sw,sh]`, `quality=1..100`.
A study or series renders one image per instance (its first frame), streamed as
multipart/related; a thumbnail is one small image of the middle instance and frame.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import Services, ServicesDep, audited, in_scope, require
from api.dicomweb.media import parse_accept
from api.dicomweb.paths import INSTANCE_PATH
from api.dicomweb.stored import (
    instance_bytes,
    list_instances,
    listed_bytes,
    middle,
    parse_frame_list,
)
from infra.auth.permissions import Permission
from infra.dicom.pixels import (
    ImageFormat,
    PixelError,
    RenderOptions,
    Viewport,
    Window,
    WindowFunction,
    load_dataset,
    number_of_frames,
    render_frames,
)
from infra.multipart import build_multipart
from schemas.catalog import CatalogInstance

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/dicom-web",
    tags=["dicomweb"],
    dependencies=[require(Permission.STUDIES_READ), audited("wado-rendered"), in_scope()],
)

THUMBNAIL_SIZE = 128

WindowQuery = Annotated[
    str | None, Query(description="center,width[,function]: linear, linear-exact or sigmoid")
]
ViewportQuery = Annotated[
    str | None, Query(description="vw,vh[,sx,sy,sw,sh]: output size and source region")
]
QualityQuery = Annotated[int | None, Query(ge=1, le=100, description="JPEG quality 1-100")]


def parse_window(text: str | None) -> Window | None:
    if text is None or not text.strip():
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise HTTPException(400, "window must be center,width[,function]")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise HTTPException(400, f"window {text!r}: center and width must be numbers") from exc
    function = WindowFunction.LINEAR
    if len(parts) == 3:
        try:
            function = WindowFunction(parts[2].lower())
        except ValueError as exc:
            raise HTTPException(
                400, f"window function {parts[2]!r} is not linear, linear-exact or sigmoid"
            ) from exc
    if width <= 0 or (function == WindowFunction.LINEAR and width < 1):
        raise HTTPException(400, f"window width {width} is too small for {function}")
    return Window(center, width, function)


def parse_viewport(text: str | None) -> Viewport | None:
    if text is None or not text.strip():
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 6) or not all(p.isdigit() for p in parts):
        raise HTTPException(400, "viewport must be vw,vh or vw,vh,sx,sy,sw,sh (whole numbers)")
    numbers = [int(p) for p in parts]
    if numbers[0] < 1 or numbers[1] < 1 or numbers[0] > 8192 or numbers[1] > 8192:
        raise HTTPException(400, "viewport width and height must be between 1 and 8192")
    region = None
    if len(numbers) == 6:
        if numbers[4] < 1 or numbers[5] < 1:
            raise HTTPException(400, "viewport source width and height must be positive")
        region = (numbers[2], numbers[3], numbers[4], numbers[5])
    return Viewport(numbers[0], numbers[1], region)


def choose_format(request: Request) -> tuple[ImageFormat, bool]:
    """The image type, and whether the client asked for multipart/related."""
    for entry in parse_accept(request.headers.get("accept")):
        part = entry.part_type
        if part is None and entry.is_multipart:
            part = ImageFormat.JPEG
        if part is None:
            return ImageFormat.JPEG, False
        if part in (ImageFormat.JPEG, ImageFormat.PNG):
            return ImageFormat(part), entry.is_multipart
    raise HTTPException(406, "rendered images are offered as image/jpeg or image/png")


def render_options(
    request: Request,
    window: str | None,
    viewport: str | None,
    quality: int | None,
    thumbnail: bool = False,
) -> tuple[RenderOptions, bool]:
    image_format, multipart = choose_format(request)
    chosen_viewport = parse_viewport(viewport)
    if chosen_viewport is None and thumbnail:
        chosen_viewport = Viewport(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    options = RenderOptions(
        format=image_format,
        window=parse_window(window),
        viewport=chosen_viewport,
        quality=quality or (75 if thumbnail else 90),
    )
    return options, multipart


@dataclass(frozen=True)
class Rendering:
    """What the query and Accept header ask of a rendered image."""

    options: RenderOptions
    multipart: bool


def _rendering(thumbnail: bool) -> Callable[..., Awaitable[Rendering]]:
    # async: FastAPI runs a plain-def dependency in its thread pool, a hop per request.
    async def dependency(
        request: Request,
        window: WindowQuery = None,
        viewport: ViewportQuery = None,
        quality: QualityQuery = None,
    ) -> Rendering:
        return Rendering(*render_options(request, window, viewport, quality, thumbnail))

    return dependency


RenderedDep = Annotated[Rendering, Depends(_rendering(thumbnail=False))]
ThumbnailDep = Annotated[Rendering, Depends(_rendering(thumbnail=True))]


async def _render_instance(
    services: Services,
    study: str,
    series: str,
    instance: str,
    frames: list[int] | None,
    options: RenderOptions,
    multipart: bool,
) -> Response:
    data = await instance_bytes(services, study, series, instance)
    try:
        images = await asyncio.to_thread(render_frames, data, frames, options)
    except PixelError as exc:
        status = 404 if exc.missing else 406
        raise HTTPException(status, f"instance {instance}: {exc.reason}") from exc
    if len(images) == 1 and not multipart:
        return Response(images[0], media_type=options.format.value)
    body, boundary = build_multipart((options.format.value, image) for image in images)
    return Response(
        body, media_type=f'multipart/related; type="{options.format.value}"; boundary={boundary}'
    )


def _with_pixels(instances: list[CatalogInstance]) -> list[CatalogInstance]:
    images = [item for item in instances if item.rows > 0]
    return images or instances


async def _stream_rendered(
    services: Services, instances: list[CatalogInstance], options: RenderOptions, boundary: str
) -> AsyncIterator[bytes]:
    for item in instances:
        data = await listed_bytes(services, item)
        if data is None:
            continue
        try:
            (image,) = await asyncio.to_thread(render_frames, data, [1], options)
        except PixelError as exc:
            log.info("not rendered %s: %s", item.sop_instance_uid, exc.reason)
            continue
        yield f"--{boundary}\r\nContent-Type: {options.format.value}\r\n\r\n".encode()
        yield image + b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _rendered_many(
    services: Services, instances: list[CatalogInstance], options: RenderOptions
) -> Response:
    boundary = uuid.uuid4().hex
    return StreamingResponse(
        _stream_rendered(services, _with_pixels(instances), options, boundary),
        media_type=f'multipart/related; type="{options.format.value}"; boundary={boundary}',
    )


@router.get("/studies/{study}/rendered")
async def retrieve_study_rendered(
    study: str,
    services: ServicesDep,
    rendering: RenderedDep,
) -> Response:
    """The first frame of every instance of the study, rendered."""
    options = rendering.options
    return _rendered_many(services, await list_instances(services, study), options)


@router.get("/studies/{study}/series/{series}/rendered")
async def retrieve_series_rendered(
    study: str,
    series: str,
    services: ServicesDep,
    rendering: RenderedDep,
) -> Response:
    """The first frame of every instance of the series, rendered."""
    options = rendering.options
    return _rendered_many(services, await list_instances(services, study, series), options)


@router.get(INSTANCE_PATH + "/rendered")
async def retrieve_instance_rendered(
    study: str,
    series: str,
    instance: str,
    services: ServicesDep,
    rendering: RenderedDep,
) -> Response:
    """The instance rendered: its first frame, or every frame when multipart is asked for."""
    options, multipart = rendering.options, rendering.multipart
    frames: list[int] | None = [1]
    if multipart:
        data = await instance_bytes(services, study, series, instance)
        count = number_of_frames(await asyncio.to_thread(load_dataset, data))
        frames = list(range(1, count + 1)) or [1]
    return await _render_instance(services, study, series, instance, frames, options, multipart)


@router.get(INSTANCE_PATH + "/frames/{frame_list}/rendered")
async def retrieve_frames_rendered(
    study: str,
    series: str,
    instance: str,
    frame_list: str,
    services: ServicesDep,
    rendering: RenderedDep,
) -> Response:
    """The frames asked for, rendered (one image, or multipart/related for several)."""
    frames = parse_frame_list(frame_list)
    options, multipart = rendering.options, rendering.multipart
    return await _render_instance(services, study, series, instance, frames, options, multipart)


async def _thumbnail_of(
    services: Services, instances: list[CatalogInstance], options: RenderOptions
) -> Response:
    chosen = middle(_with_pixels(instances))
    return await _render_instance(
        services,
        chosen.study_instance_uid,
        chosen.series_instance_uid,
        chosen.sop_instance_uid,
        None,
        options,
        False,
    )


@router.get("/studies/{study}/thumbnail")
async def retrieve_study_thumbnail(
    study: str,
    services: ServicesDep,
    rendering: ThumbnailDep,
) -> Response:
    """A small image of the middle instance of the study's first series."""
    options = rendering.options
    instances = await list_instances(services, study)
    first_series = instances[0].series_instance_uid
    return await _thumbnail_of(
        services, [i for i in instances if i.series_instance_uid == first_series], options
    )


@router.get("/studies/{study}/series/{series}/thumbnail")
async def retrieve_series_thumbnail(
    study: str,
    series: str,
    services: ServicesDep,
    rendering: ThumbnailDep,
) -> Response:
    """A small image of the series' middle instance."""
    options = rendering.options
    return await _thumbnail_of(services, await list_instances(services, study, series), options)


@router.get(INSTANCE_PATH + "/thumbnail")
async def retrieve_instance_thumbnail(
    study: str,
    series: str,
    instance: str,
    services: ServicesDep,
    rendering: ThumbnailDep,
) -> Response:
    """A small image of the instance's middle frame."""
    options = rendering.options
    return await _render_instance(services, study, series, instance, None, options, False)


@router.get(INSTANCE_PATH + "/frames/{frame_list}/thumbnail")
async def retrieve_frame_thumbnail(
    study: str,
    series: str,
    instance: str,
    frame_list: str,
    services: ServicesDep,
    rendering: ThumbnailDep,
) -> Response:
    """A small image of the first frame listed."""
    frames = parse_frame_list(frame_list)[:1]
    options = rendering.options
    return await _render_instance(services, study, series, instance, frames, options, False)
