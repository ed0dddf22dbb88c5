"""multipart/related bodies (RFC 2387) as DICOMweb uses them.

Bodies are read with `MultipartReader`, a push parser over python-multipart's
`MultipartParser` (the boundary state machine Starlette's form parsing uses; it knows nothing
of form-data, so it serves multipart/related unchanged): fed the request body chunk by chunk,
it hands back each part as soon as the delimiter after it has arrived, so a STOW-RS request
is held in memory one part at a time, never whole.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError

# Headers a part may carry (Content-Type, Content-Location, Content-ID, Content-Length, ...).
MAX_PART_HEADERS = 32
# Text before the first delimiter (RFC 2046 allows a preamble) that is skipped; a body with
# no delimiter this early is not the multipart body its Content-Type announced.
MAX_PREAMBLE_BYTES = 64 * 1024


class MultipartError(ValueError):
    """The body or its Content-Type is not valid multipart/related."""


class PartTooLarge(Exception):
    """A part grew past the largest part the reader was told to accept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a part is larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Part:
    content_type: str
    body: bytes


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split `type/subtype; a=b; c="d"` into the media type and its parameters."""
    message = Message()
    message["content-type"] = value
    params = {k.lower(): v for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


class MultipartReader:
    """Push parser: `feed` chunks of a multipart body, get back the parts they completed.

    Each part's bytes are kept exactly as sent. Only the part still being received is held
    here; `max_part_bytes` bounds it (PartTooLarge as soon as a part grows past it). After
    the last chunk, `close` says whether the body ended properly.
    """

    def __init__(self, boundary: str, max_part_bytes: int | None = None) -> None:
        try:
            encoded = boundary.encode("ascii")
            self._parser = MultipartParser(
                encoded,
                callbacks={
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
                max_header_count=MAX_PART_HEADERS,
            )
        except (UnicodeEncodeError, FormParserError) as exc:
            raise MultipartError(f"unusable multipart boundary: {exc}") from exc
        self._max_part = max_part_bytes
        # The preamble is searched for CRLF + delimiter; a virtual CRLF lets the body start
        # with the delimiter itself.
        self._opener = b"\r\n--" + encoded
        self._preamble: bytearray | None = bytearray(b"\r\n")
        self._preamble_seen = 0
        self._ready: list[Part] = []
        self._problem: MultipartError | PartTooLarge | None = None
        self._parts = 0
        self._ended = False
        self._body: io.BytesIO | None = None
        self._size = 0
        self._field = bytearray()
        self._value = bytearray()
        self._content_type = ""

    # -- python-multipart callbacks ---------------------------------------------------------

    def _on_part_begin(self) -> None:
        # BytesIO grows in place and getvalue() hands its buffer over without a copy:
        # a part costs its own size once, not twice.
        self._body = io.BytesIO()
        self._size = 0
        self._content_type = ""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        if self._field.strip().lower() == b"content-type":
            self._content_type = self._value.strip().decode("latin-1")
        self._field.clear()
        self._value.clear()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._max_part is not None and self._size > self._max_part:
            raise PartTooLarge(self._max_part)
        assert self._body is not None
        self._body.write(memoryview(data)[start:end])

    def _on_part_end(self) -> None:
        assert self._body is not None
        self._ready.append(Part(content_type=self._content_type, body=self._body.getvalue()))
        self._body = None
        self._parts += 1

    def _on_end(self) -> None:
        self._ended = True

    # -- feeding ----------------------------------------------------------------------------

    def _skip_preamble(self, chunk: bytes) -> bytes:
        """The chunk from the first delimiter on; b"" while still inside the preamble."""
        assert self._preamble is not None
        if self._preamble_seen == 0 and chunk.startswith(self._opener[2:]):
            self._preamble = None  # the usual body: no preamble, nothing to copy
            return chunk
        self._preamble += chunk
        found = self._preamble.find(self._opener)
        if found >= 0:
            rest = bytes(self._preamble[found + 2 :])
            self._preamble = None
            return rest
        self._preamble_seen += len(chunk)
        if self._preamble_seen > MAX_PREAMBLE_BYTES:
            raise MultipartError(
                f"no multipart delimiter for the boundary given in Content-Type within the "
                f"first {MAX_PREAMBLE_BYTES} bytes"
            )
        # Keep only what could still be the start of a delimiter split across chunks.
        del self._preamble[: -(len(self._opener) - 1)]
        return b""

    def feed(self, chunk: bytes) -> list[Part]:
        """Parse the next chunk; returns the parts it completed, in order.

        A chunk that completes parts and then breaks the body (malformed, or a part too
        large) still returns those parts; `check` (or the next call) raises the problem.
        """
        self.check()
        try:
            if self._preamble is not None:
                chunk = self._skip_preamble(chunk)
            if chunk and not self._ended:
                try:
                    self._parser.write(chunk)
                except FormParserError as exc:
                    raise MultipartError(f"malformed multipart body: {exc}") from exc
        except (MultipartError, PartTooLarge) as exc:
            self._problem = exc
        ready, self._ready = self._ready, []
        return ready

    def check(self) -> None:
        """Raise what broke the body (MultipartError or PartTooLarge), if anything did."""
        if self._problem is not None:
            raise self._problem

    def close(self) -> None:
        """The body has ended: MultipartError unless it held parts and its closing delimiter."""
        self.check()
        if self._parts == 0 and self._body is None:
            raise MultipartError("no parts found for the boundary given in Content-Type")
        if not self._ended:
            raise MultipartError(
                "the body ends before the closing multipart delimiter: its last part is incomplete"
            )


def split_multipart(body: bytes, boundary: str) -> list[Part]:
    """Split a whole multipart body on its boundary; each part keeps its bytes exactly."""
    reader = MultipartReader(boundary)
    parts = reader.feed(body)
    reader.close()  # raises what feed found, if anything
    return parts


def build_multipart(parts: Iterable[tuple[str, bytes]]) -> tuple[bytes, str]:
    """Encode parts; returns the body and its boundary."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for content_type, content in parts:
        out += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        out += content
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), boundary
