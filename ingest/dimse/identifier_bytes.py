"""C-FIND response identifiers and command sets written straight to bytes.

pydicom builds a DataElement per value (validating it against its VR) and pynetdicom then
writes the dataset element by element and the command set twice (once to learn its group
length): together about half the gateway's CPU for a C-FIND. A response identifier holds a
handful of short values of a few VRs, so writing them here is simple; anything else (a VR
not listed below, a DS or other non-string number given as a number, text that is not
ASCII) returns None and the caller goes back to pydicom, so the bytes are always the same
as pydicom would write (tests/unit/ingest/dimse/test_identifier_bytes.py compares them).
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom.dataset import Dataset

# Text VRs written as given; UI is padded with NUL, the rest with a space (PS3.5 6.2).
_TEXT = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
_INTEGERS = {"US": "H", "UL": "I", "SS": "h", "SL": "i"}
# Explicit VR: these have two reserved bytes and a 4-byte length (PS3.5 7.1.2).
_LONG_LENGTH = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})

QUERY_RETRIEVE_LEVEL = 0x00080052


def _value_bytes(vr: str, values: list[Any]) -> bytes | None:
    if vr in _TEXT or vr == "IS":
        if vr == "IS":
            if not all(isinstance(v, int | str) and not isinstance(v, bool) for v in values):
                return None
        elif not all(isinstance(v, str) for v in values):
            return None
        text = "\\".join(str(v) for v in values)
        if not text.isascii():
            return None  # needs the dataset's character set: pydicom's job
        raw = text.encode("ascii")
        if len(raw) % 2:
            raw += b"\x00" if vr == "UI" else b" "
        return raw
    if vr in _INTEGERS:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return None
        try:
            return struct.pack(f"<{len(values)}{_INTEGERS[vr]}", *values)
        except struct.error:
            return None
    if vr == "SQ" and not values:
        return b""
    return None


def element_bytes(tag: int, vr: str, values: list[Any], explicit: bool) -> bytes | None:
    """One element, little endian, explicit or implicit VR; None if not written here."""
    value = _value_bytes(vr, values)
    if value is None:
        return None
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if not explicit:
        return head + struct.pack("<I", len(value)) + value
    if vr in _LONG_LENGTH:
        return head + vr.encode() + b"\x00\x00" + struct.pack("<I", len(value)) + value
    if len(value) > 0xFFFF:
        return None
    return head + vr.encode() + struct.pack("<H", len(value)) + value


def match_values(found: dict[str, Any]) -> list[Any]:
    # The catalog holds flat values: PN as {"Alphabetic": …}, the rest as they are.
    return [v.get("Alphabetic", "") if isinstance(v, dict) else v for v in found.get("Value", [])]


def identifier_bytes(
    identifier: Dataset, match: dict[str, Any], level: str, explicit: bool
) -> bytes | None:
    """What qr_find.response_identifier builds, encoded: every requested key (empty where the
    match holds no value) plus the QueryRetrieveLevel, in tag order."""
    level_bytes = element_bytes(QUERY_RETRIEVE_LEVEL, "CS", [level], explicit)
    if level_bytes is None:
        return None
    parts = {QUERY_RETRIEVE_LEVEL: level_bytes}
    for elem in identifier:
        tag = int(elem.tag)
        if tag == QUERY_RETRIEVE_LEVEL:
            continue
        found = match.get(f"{tag:08X}")
        if found is None:
            encoded = element_bytes(tag, elem.VR, [], explicit)
        else:
            encoded = element_bytes(tag, found["vr"], match_values(found), explicit)
        if encoded is None:
            return None  # one element pydicom must write: it writes them all
        parts[tag] = encoded
    return b"".join(parts[tag] for tag in sorted(parts))


def command_set_bytes(elements: list[tuple[int, str, Any]]) -> bytes:
    """A command set (always implicit VR little endian, PS3.7 6.3.1) with its group length.
    `elements` are (tag, VR, value) of group 0000, in tag order, without (0000,0000)."""
    body = bytearray()
    for tag, vr, value in elements:
        encoded = element_bytes(tag, vr, [value], explicit=False)
        if encoded is None:
            raise ValueError(f"cannot write command element {tag:08X} {vr} {value!r}")
        body += encoded
    length = element_bytes(0x00000000, "UL", [len(body)], explicit=False)
    assert length is not None
    return length + bytes(body)
