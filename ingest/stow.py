"""STOW-RS intake (PS3.18 10.5): a multipart/related body streamed into the accept path.

Framework-free, like the DIMSE side of ingest: the HTTP route (api/dicomweb/stow.py) hands
over the request's headers and its body as an async iterator of chunks, and turns the
answer (or a `StowRefused`) into a response. Parts are accepted while the rest of the body
is still arriving, so a request is held in memory a few parts at a time, never whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

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
from ingest.accept import Acceptor, Origin, Outcome
from ingest.stow_response import JsonDataset, response_dataset, stow_status

log = logging.getLogger(__name__)

DICOM_MEDIA_TYPE = "application/dicom"
# Parts are stored concurrently so their event sends share broker round trips...
STOW_CONCURRENCY = 16
# ...but a part's bytes stay in memory until it is accepted: the body is not read further
# while this much is in flight, so memory follows the largest part, not the request.
STOW_IN_FLIGHT_BYTES = 32 * 1024 * 1024


class StowRefused(Exception):
    """Nothing was stored: the HTTP status and reason. `close` asks to close the connection
    because the body was not read to its end, so the client stops sending (RFC 9110
    15.5.14) instead of the server draining the rest."""

    def __init__(self, status: int, reason: str, close: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.close = close


@dataclass
class StowAnswer:
    """What to answer: status, the DICOM JSON response dataset, extra headers."""

    status: int
    body: JsonDataset
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StowRequest:
    """One STOW-RS request as the HTTP layer received it."""

    content_type: str
    content_length: int | None
    study: str | None  # set for POST /studies/{study}: every part must belong to it
    client: str  # the sender's address, for the audit trail
    root: str  # the DICOMweb root URL, for RetrieveURLs in the answer


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

    def __init__(self, acceptor: Acceptor, origin: Origin, study: str | None) -> None:
        self.acceptor = acceptor
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


def _reader(request: StowRequest, limits: HttpSettings) -> MultipartReader:
    """A parser for the body, once its headers are acceptable; StowRefused otherwise."""
    media_type, params = parse_content_type(request.content_type)
    if media_type != "multipart/related":
        raise StowRefused(415, f"expected multipart/related, got {media_type or 'nothing'}")
    part_type = params.get("type", DICOM_MEDIA_TYPE).lower()
    if part_type != DICOM_MEDIA_TYPE:
        raise StowRefused(
            415, f'only type="{DICOM_MEDIA_TYPE}" parts are accepted, got {part_type}'
        )
    boundary = params.get("boundary")
    if not boundary:
        raise StowRefused(400, "multipart/related Content-Type has no boundary parameter")
    if request.study is not None and (problem := validate_uid("StudyInstanceUID", request.study)):
        raise StowRefused(400, problem)
    declared = request.content_length
    if declared is not None and declared > limits.stow_max_request_bytes:
        # Refused before a byte is read; closing spares the client sending the rest.
        raise StowRefused(
            413,
            f"request body of {declared} bytes exceeds the STOW-RS maximum of "
            f"{limits.stow_max_request_bytes} bytes (PACS_HTTP__STOW_MAX_REQUEST_BYTES); "
            "nothing was stored",
            close=True,
        )
    try:
        return MultipartReader(boundary, max_part_bytes=limits.stow_max_part_bytes)
    except MultipartError as exc:
        raise StowRefused(400, str(exc)) from exc


async def _receive(
    body: AsyncIterator[bytes], reader: MultipartReader, intake: _Intake, limits: HttpSettings
) -> _Refusal | None:
    """Stream the body through the parser into the accept path; why it stopped early, if so."""
    maximum = limits.stow_max_request_bytes
    received = 0
    try:
        async for chunk in body:
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


async def store(
    request: StowRequest, body: AsyncIterator[bytes], acceptor: Acceptor, limits: HttpSettings
) -> StowAnswer:
    """Store every instance of the body; StowRefused when nothing was stored."""
    reader = _reader(request, limits)
    intake = _Intake(acceptor, Origin(via="stow", client=request.client), request.study)
    try:
        refusal = await _receive(body, reader, intake, limits)
    except Exception:
        # The sender hung up (the body's iterator raised): nobody to answer, but what was
        # handed over still finishes (durable and announced, or not stored at all), as for
        # any sender that hangs up after its data went out.
        outcomes = await intake.outcomes()
        log.info("STOW-RS body ended early after %d part(s)", len(outcomes))
        raise
    outcomes = await intake.outcomes()
    if refusal is None:
        return StowAnswer(stow_status(outcomes), response_dataset(request.root, outcomes, []))
    if not outcomes:
        raise StowRefused(
            refusal.status, f"{refusal.reason}; nothing was stored", close=not refusal.body_read
        )
    # Parts before the refusal went through the accept path: they are reported as for any
    # STOW (stored ones are durable and announced); the rest is one failure.
    code = OUT_OF_RESOURCES if refusal.status == 413 else CANNOT_UNDERSTAND
    remainder = f"{refusal.reason}; this part and any after it were not stored"
    quoted = remainder.replace("\\", "/").replace('"', "'")
    headers = {"Warning": f'299 pacs "{quoted}"'}
    if not refusal.body_read:
        headers["Connection"] = "close"
    dataset = response_dataset(request.root, outcomes, [Outcome(code, remainder)])
    return StowAnswer(refusal.status, dataset, headers)
