"""Content negotiation for WADO-RS (PS3.18 8.7): Accept ranges, media types and syntaxes.

Pure functions: the routes say what they can produce, this module says what to send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from infra.multipart import parse_content_type

ANY_SYNTAX = "*"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
OCTET_STREAM = "application/octet-stream"
DICOM = "application/dicom"

# PS3.18 Table 8.7.3-5 (single and multi-frame pixel data): media type -> transfer syntaxes,
# the default first.
FRAME_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    OCTET_STREAM: (EXPLICIT_LE, IMPLICIT_LE),
    "image/jpeg": (
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
    ),
    "image/dicom-rle": ("1.2.840.10008.1.2.5",),
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jpx": ("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"),
    "image/jphc": ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"),
    "image/jxl": ("1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112"),
    "video/mpeg": ("1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101"),
    "video/mp4": (
        "1.2.840.10008.1.2.4.102",
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.106",
    ),
    "video/H265": ("1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"),
}
# Native syntaxes: their frames travel as application/octet-stream.
NATIVE = frozenset({EXPLICIT_LE, IMPLICIT_LE, "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"})


def media_type_of_syntax(transfer_syntax: str) -> str | None:
    """The compressed-pixel media type for frames stored in this syntax."""
    if transfer_syntax in NATIVE:
        return OCTET_STREAM
    for media_type, syntaxes in FRAME_MEDIA_TYPES.items():
        if transfer_syntax in syntaxes:
            return media_type
    return None


class NotAcceptable(Exception):
    """Nothing the client accepts can be produced; `reason` says why (HTTP 406)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "multipart/related"

    @property
    def part_type(self) -> str | None:
        """The media type of the parts (or of the single body); None for wildcards."""
        if self.is_multipart:
            return self.params.get("type")
        if self.media_type in ("*/*", "application/*", "image/*", "video/*"):
            return None
        return self.media_type

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def parse_accept(header: str | None) -> list[MediaRange]:
    """Accept entries, most preferred first (by q, then by order)."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges: list[MediaRange] = []
    for item in _split_outside_quotes(header):
        if not item.strip():
            continue
        # email.message lower-cases the type and drops a malformed one to text/plain.
        media_type, params = parse_content_type(item.strip())
        raw_type = item.strip().split(";", 1)[0].strip().lower()
        if raw_type == "*/*" or raw_type.endswith("/*"):
            media_type = raw_type
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if "type" in params:
            params["type"] = params["type"].strip().lower()
        ranges.append(MediaRange(media_type, params, quality))
    ranges.sort(key=lambda r: -r.quality)
    return [r for r in ranges if r.quality > 0] or [MediaRange("*/*")]


def _split_outside_quotes(header: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return items


@dataclass(frozen=True)
class Choice:
    """What to send: each part's media type and transfer syntax, and whether multipart."""

    media_type: str
    transfer_syntax: str
    multipart: bool

    @property
    def part_content_type(self) -> str:
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def choose_instance_syntax(
    accept: list[MediaRange], stored: str, can_produce: Callable[[str], bool]
) -> Choice:
    """application/dicom: as stored unless a specific syntax is asked (PS3.18 8.7.3.5.2).

    Without a transfer-syntax parameter we send the stored bytes untouched (PS3.18 would
    default to Explicit VR Little Endian; unchanged bytes keep checksums verifiable and
    cost no CPU, and every client we know reads the part's transfer-syntax).
    """
    reasons: list[str] = []
    for entry in accept:
        part = entry.part_type
        if entry.is_multipart and part is None:
            part = DICOM  # multipart/related without type: the resource's default
        if part not in (None, DICOM):
            reasons.append(f"{entry.media_type} {part or ''}".strip() + " is not offered")
            continue
        wanted = entry.transfer_syntax
        multipart = entry.is_multipart or entry.part_type is None
        if wanted in (None, ANY_SYNTAX, stored):
            return Choice(DICOM, stored, multipart)
        if can_produce(wanted):
            return Choice(DICOM, wanted, multipart)
        reasons.append(f"stored as {stored}, which cannot be transcoded to {wanted}")
    raise NotAcceptable(_join(reasons, "application/dicom"))


def choose_frame_syntax(
    accept: list[MediaRange], stored: str, can_produce: Callable[[str], bool]
) -> Choice:
    """Pixel data (frames, bulk data): PS3.18 Table 8.7.3-5.

    `can_produce(ts)` says whether frames can be made in `ts` from the stored encoding
    (for the native syntaxes: whether the stored frames can be decoded).
    """
    stored_media = media_type_of_syntax(stored)
    reasons: list[str] = []
    for entry in accept:
        part = entry.part_type or OCTET_STREAM
        multipart = entry.is_multipart or entry.part_type is None
        syntaxes = FRAME_MEDIA_TYPES.get(part)
        if syntaxes is None:
            reasons.append(f"{part} is not a pixel data media type")
            continue
        wanted = entry.transfer_syntax
        if wanted == ANY_SYNTAX:
            # The server's choice: the stored encoding, if it is of an acceptable kind.
            if part == OCTET_STREAM and stored_media is not None:
                media = OCTET_STREAM if stored in NATIVE else stored_media
                return Choice(media, EXPLICIT_LE if stored in NATIVE else stored, multipart)
            if stored in syntaxes:
                return Choice(part, stored, multipart)
            wanted = None
        if wanted is None:
            candidates = [s for s in syntaxes if s == stored] + list(syntaxes)
        elif wanted in syntaxes:
            candidates = [wanted]
        else:
            reasons.append(f"{wanted} is not a transfer syntax of {part}")
            continue
        for candidate in candidates:
            if candidate == stored or can_produce(candidate):
                return Choice(part, candidate, multipart)
        reasons.append(f"frames stored as {stored} cannot be produced as {part}")
    raise NotAcceptable(_join(reasons, "pixel data"))


def _join(reasons: list[str], what: str) -> str:
    unique = list(dict.fromkeys(reasons))
    return f"no acceptable {what} representation: " + "; ".join(unique)
