"""multipart/related bodies (RFC 2387) as DICOMweb uses them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message


class MultipartError(ValueError):
    """The body or its Content-Type is not valid multipart/related."""


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


def split_multipart(body: bytes, boundary: str) -> list[Part]:
    """Split a multipart body on its boundary; each part keeps its bytes exactly."""
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise MultipartError("no parts found for the boundary given in Content-Type")
    parts: list[Part] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        # Each part: CRLF, headers, CRLF CRLF, body, CRLF (which belongs to the next delimiter).
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            if chunk.startswith(b"\r\n"):
                head, content = b"", chunk[2:]
            else:
                raise MultipartError("a part has no header/body separator")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        content_type = ""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-type":
                content_type = value.strip().decode("latin-1")
        parts.append(Part(content_type=content_type, body=content))
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
