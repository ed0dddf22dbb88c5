"""WADO-RS frames and bulk data of an instance (PS3.18 10.4.1.1.4, 10.4.1.1.5).

Frames go out uncompressed (application/octet-stream) or in a compressed-pixel media type
(image/jpeg, image/jls, image/jp2, image/jphc, image/dicom-rle …) per PS3.18 Table 8.7.3-5.
`transfer-syntax=*` (what OHIF asks for) returns each frame exactly as stored, with its own
media type and transfer syntax in the part's Content-Type.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from functools import partial

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.tag import BaseTag, Tag

from api.deps import ServicesDep, audited, in_scope, require
from api.dicomweb.media import (
    EXPLICIT_LE,
    IMPLICIT_LE,
    OCTET_STREAM,
    Choice,
    NotAcceptable,
    choose_frame_syntax,
    parse_accept,
)
from api.dicomweb.paths import INSTANCE_PATH
from api.dicomweb.stored import instance_bytes, parse_frame_list
from infra.auth.permissions import Permission
from infra.dicom.header import read_header
from infra.dicom.pixels import (
    PixelError,
    check_frame,
    load_dataset,
    native_frame,
    number_of_frames,
    stored_frame,
)
from infra.dicom.transcode import TranscodeError, can_decode, can_encode, transcode
from infra.multipart import build_multipart

router = APIRouter(
    prefix="/dicom-web",
    tags=["dicomweb"],
    dependencies=[require(Permission.STUDIES_READ), audited("wado-frames"), in_scope()],
)

_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # Pixel Data, Float, Double Float
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


def can_produce_frames(stored: str, target: str) -> bool:
    """Whether frames stored in `stored` can be sent in `target`."""
    if target in (EXPLICIT_LE, IMPLICIT_LE):
        return can_decode(stored)
    return can_encode(target) and can_decode(stored)


def _choose(request: Request, stored: str) -> Choice:
    accept = parse_accept(request.headers.get("accept"))
    try:
        return choose_frame_syntax(accept, stored, partial(can_produce_frames, stored))
    except NotAcceptable as exc:
        raise HTTPException(406, exc.reason) from exc


def encode_frames(data: bytes, frames: list[int] | None, choice: Choice) -> list[bytes]:
    """The frames asked for (None = all), in the chosen representation."""
    ds = load_dataset(data)
    wanted = frames or list(range(1, number_of_frames(ds) + 1))
    for frame in wanted:
        check_frame(ds, frame)
    stored = str(ds.file_meta.TransferSyntaxUID)
    if choice.media_type == OCTET_STREAM:
        return [native_frame(ds, frame) for frame in wanted]
    if choice.transfer_syntax != stored:
        ds = load_dataset(transcode(data, choice.transfer_syntax))
    return [stored_frame(ds, frame) for frame in wanted]


def frames_response(parts: list[bytes], choice: Choice) -> Response:
    if len(parts) == 1 and not choice.multipart:
        return Response(parts[0], media_type=choice.part_content_type)
    body, boundary = build_multipart((choice.part_content_type, part) for part in parts)
    return Response(
        body,
        media_type=f'multipart/related; type="{choice.media_type}"; boundary={boundary}',
    )


async def _send_frames(
    request: Request, data: bytes, frames: list[int] | None, instance: str
) -> Response:
    choice = _choose(request, read_header(data).transfer_syntax_uid)
    try:
        parts = await asyncio.to_thread(encode_frames, data, frames, choice)
    except PixelError as exc:
        status = 404 if exc.missing else 406
        raise HTTPException(status, f"instance {instance}: {exc.reason}") from exc
    except TranscodeError as exc:
        raise HTTPException(406, f"instance {instance}: {exc.reason}") from exc
    return frames_response(parts, choice)


@router.get(INSTANCE_PATH + "/frames/{frame_list}")
async def retrieve_frames(
    study: str,
    series: str,
    instance: str,
    frame_list: str,
    request: Request,
    services: ServicesDep,
) -> Response:
    """Frames by 1-based number, e.g. `/frames/1,3`."""
    frames = parse_frame_list(frame_list)
    data = await instance_bytes(services, study, series, instance)
    return await _send_frames(request, data, frames, instance)


@dataclass(frozen=True)
class TagPath:
    """`00540016/0/00181072`: tags, with item indexes between sequence and nested tag."""

    tags: tuple[BaseTag, ...]
    items: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> TagPath:
        segments = [s for s in text.strip("/").split("/") if s]
        if not segments or len(segments) % 2 == 0:
            raise HTTPException(
                400, f"bulk data path {text!r} must be tag[/item/tag]…, e.g. 00540016/0/00181072"
            )
        tags: list[BaseTag] = []
        items: list[int] = []
        for position, segment in enumerate(segments):
            if position % 2 == 0:
                if not _TAG.match(segment):
                    raise HTTPException(400, f"{segment!r} is not an 8-hex-digit tag")
                tags.append(Tag(int(segment, 16)))
            else:
                if not segment.isdigit():
                    raise HTTPException(400, f"{segment!r} is not a sequence item index")
                items.append(int(segment))
        return cls(tuple(tags), tuple(items))

    @property
    def is_pixel_data(self) -> bool:
        return len(self.tags) == 1 and int(self.tags[0]) in _PIXEL_TAGS

    def find(self, ds: Dataset) -> DataElement:
        """The element at the path, or 404 naming the first step that is missing."""
        current = ds
        for depth, tag in enumerate(self.tags):
            if tag not in current:
                raise HTTPException(404, f"attribute {tag} is not in the instance")
            element = current[tag]
            if depth == len(self.tags) - 1:
                return element
            index = self.items[depth]
            if element.VR != "SQ" or index >= len(element.value):
                raise HTTPException(404, f"{tag} has no item {index}")
            current = element.value[index]
        raise HTTPException(404, "empty bulk data path")


def element_bytes(element: DataElement) -> bytes:
    value = element.value
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise HTTPException(404, f"attribute {element.tag} holds no bulk data")


@router.get(INSTANCE_PATH + "/bulkdata/{tag_path:path}")
async def retrieve_bulkdata(
    study: str,
    series: str,
    instance: str,
    tag_path: str,
    request: Request,
    services: ServicesDep,
) -> Response:
    """A large value by its tag path; Pixel Data comes back as all of the frames."""
    path = TagPath.parse(tag_path)
    data = await instance_bytes(services, study, series, instance)
    if path.is_pixel_data:
        return await _send_frames(request, data, None, instance)
    stored = read_header(data).transfer_syntax_uid
    if stored == "1.2.840.10008.1.2.2":
        # Bulk data goes out little endian (PS3.18 8.7.3.4).
        try:
            data = await asyncio.to_thread(transcode, data, EXPLICIT_LE)
        except TranscodeError as exc:
            raise HTTPException(406, exc.reason) from exc
    try:
        ds = await asyncio.to_thread(load_dataset, data)
    except PixelError as exc:
        raise HTTPException(500, exc.reason) from exc
    body = element_bytes(path.find(ds))
    choice = Choice(OCTET_STREAM, EXPLICIT_LE, _wants_multipart(request))
    if not choice.multipart:
        return Response(body, media_type=OCTET_STREAM)
    return frames_response([body], choice)


def _wants_multipart(request: Request) -> bool:
    for entry in parse_accept(request.headers.get("accept")):
        if entry.is_multipart or entry.part_type is None:
            return True
        if entry.part_type == OCTET_STREAM:
            return False
    raise HTTPException(406, "bulk data is offered as application/octet-stream only")
