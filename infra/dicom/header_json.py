"""DICOM JSON (PS3.18 F.2) of a received header, fast enough for the ingest hot path.

pydicom's `Dataset.to_json_dict` converts every value through its Python types and costs
~15 ms for an ordinary CT header; the gateway's whole budget is ~10 ms per image. This walks
the raw elements pydicom leaves unconverted and decodes each VR's bytes directly (~1 ms),
falling back to pydicom for what it cannot decode cheaply (ISO 2022 character sets, raw
sequences). Large binary values become BulkDataURIs built from their tag path, the form the
WADO-RS `/bulkdata/{tag_path}` route serves.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

JsonDataset = dict[str, dict[str, Any]]

# Binary values larger than this are left out of the metadata and served as bulk data.
BULK_DATA_THRESHOLD = 1024

_TEXT_SINGLE = {"LT", "ST", "UT", "UR"}
_TEXT_MULTI = {"AE", "AS", "CS", "DA", "DT", "LO", "SH", "TM", "UC", "UI"}
_STRINGS = _TEXT_SINGLE | _TEXT_MULTI | {"PN", "IS", "DS"}
# Only these VRs may hold characters outside the default repertoire.
_CHARSET_VRS = {"LO", "LT", "PN", "SH", "ST", "UC", "UT"}
_BINARY = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_NUMBERS = {
    "US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q",
}  # fmt: skip
# Character sets whose bytes decode without ISO 2022 escape handling.
_SIMPLE_CHARSETS = {
    "": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8",
    "ISO_IR 101": "iso8859_2", "ISO_IR 109": "iso8859_3", "ISO_IR 110": "iso8859_4",
    "ISO_IR 144": "iso8859_5", "ISO_IR 127": "iso8859_6", "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8", "ISO_IR 148": "iso8859_9", "ISO_IR 166": "tis_620",
    "GB18030": "gb18030", "GBK": "gbk",
}  # fmt: skip

BulkUri = Callable[[str], str]


class SlowPath(Exception):
    """This dataset needs pydicom's own conversion."""


def header_json(ds: Dataset, bulk_uri: BulkUri) -> JsonDataset:
    """The DICOM JSON of `ds`; `bulk_uri(tag_path)` names where a large binary value lives."""
    encoding = _encoding(ds)
    if encoding is None:
        return _slow(ds, bulk_uri, "")
    try:
        return _dataset(ds, bulk_uri, "", encoding)
    except SlowPath:
        return _slow(ds, bulk_uri, "")


def _encoding(ds: Dataset) -> str | None:
    raw = ds.get("SpecificCharacterSet", "")
    values = [raw] if isinstance(raw, str) else list(raw)
    names = [str(v).strip() for v in values if str(v).strip()]
    if len(names) > 1:
        return None
    return _SIMPLE_CHARSETS.get(names[0] if names else "")


def _dataset(ds: Dataset, bulk_uri: BulkUri, path: str, encoding: str) -> JsonDataset:
    out: JsonDataset = {}
    for elem in ds.elements():
        tag = int(elem.tag)
        if not tag & 0xFFFF or tag >> 16 == 0x0002:
            continue  # group lengths and File Meta are not part of the dataset's JSON
        key = f"{tag:08X}"
        try:
            out[key] = _element(elem, ds, bulk_uri, path + key, encoding)
        except SlowPath:
            out[key] = _by_pydicom(ds, tag, bulk_uri, path + key)
    return out


def _by_pydicom(ds: Dataset, tag: int, bulk_uri: BulkUri, path: str) -> dict[str, Any]:
    """pydicom's conversion of one element; a value nothing can read (e.g. IS "1A") is left
    out of the metadata, never a reason to refuse the instance: it is stored as received."""
    try:
        return _converted(ds[tag], bulk_uri, path)
    except Exception:  # noqa: BLE001 - any malformed value
        vr = ds.get_item(tag).VR or "UN"
        return {"vr": vr}


def _element(
    elem: RawDataElement | DataElement, ds: Dataset, bulk_uri: BulkUri, path: str, enc: str
) -> dict[str, Any]:
    vr = elem.VR or _implied_vr(BaseTag(elem.tag))
    if type(elem) is RawDataElement and vr in _STRINGS and elem.is_little_endian:
        return _text(vr, elem.value, enc)  # the common case first, with the fewest checks
    if vr == "UN":
        # UN for a tag whose VR is known (implicit VR relayed as explicit): decode by the
        # dictionary, as pydicom does, so the metadata carries values and not base64.
        vr = _implied_vr(BaseTag(elem.tag))
    if vr == "SQ" or isinstance(elem.value, Sequence):
        items = ds[elem.tag].value  # pydicom parses the items; their elements stay raw
        return (
            {
                "vr": "SQ",
                "Value": [
                    _dataset(item, bulk_uri, f"{path}/{index}/", enc)
                    for index, item in enumerate(items)
                ],
            }
            if items
            else {"vr": "SQ"}
        )
    if isinstance(elem, DataElement):
        # Already converted (e.g. read by another step): pydicom's own JSON is exact.
        return _converted(elem, bulk_uri, path)
    value: bytes = elem.value or b""
    if not value:
        return {"vr": vr}
    if not elem.is_little_endian:
        raise SlowPath
    if vr in _BINARY:
        if len(value) > BULK_DATA_THRESHOLD:
            return {"vr": vr, "BulkDataURI": bulk_uri(path)}
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode()}
    if vr in _NUMBERS:
        code = _NUMBERS[vr]
        size = struct.calcsize(f"<{code}")
        count = len(value) // size
        return {"vr": vr, "Value": list(struct.unpack(f"<{count}{code}", value[: count * size]))}
    if vr == "AT":
        pairs = struct.unpack(f"<{len(value) // 2}H", value)
        return {
            "vr": vr,
            "Value": [f"{g:04X}{e:04X}" for g, e in zip(pairs[::2], pairs[1::2], strict=False)],
        }
    if vr in _STRINGS:
        return _text(vr, value, enc)
    raise SlowPath


def _text(vr: str, value: bytes | None, enc: str) -> dict[str, Any]:
    if not value:
        return {"vr": vr}
    text = value.decode(enc if vr in _CHARSET_VRS else "latin-1")
    if vr in _TEXT_SINGLE:
        text = text.rstrip(" \x00")
        return {"vr": vr, "Value": [text]} if text else {"vr": vr}
    parts = [part.strip(" \x00") for part in text.split("\\")]
    if vr == "PN":
        return _person_names(parts)
    if vr == "IS":
        return _numbers(vr, parts, int)
    if vr == "DS":
        return _numbers(vr, parts, float)
    if vr in _TEXT_MULTI:
        if not any(parts):
            return {"vr": vr}
        return {"vr": vr, "Value": [part if part else None for part in parts]}
    raise SlowPath  # not reached: _STRINGS lists exactly the VRs handled above


def _numbers(vr: str, parts: list[str], kind: Callable[[str], float | int]) -> dict[str, Any]:
    if not any(parts):
        return {"vr": vr}
    values: list[float | int | None] = []
    for part in parts:
        if not part:
            values.append(None)
            continue
        try:
            number = kind(part)
        except ValueError:
            # A malformed IS like "1.0": keep it as the sender wrote it would break the
            # JSON type; pydicom's own lenient conversion decides.
            raise SlowPath from None
        values.append(number)
    return {"vr": vr, "Value": values}


def _person_names(parts: list[str]) -> dict[str, Any]:
    if not any(parts):
        return {"vr": "PN"}
    values: list[dict[str, str] | None] = []
    for part in parts:
        groups = part.split("=")
        name = {
            label: group
            for label, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False)
            if group
        }
        values.append(name or None)
    return {"vr": "PN", "Value": values}


def _implied_vr(tag: BaseTag) -> str:
    if tag.is_private_creator:
        return "LO"
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"  # private or unknown tag in implicit VR: its type is not knowable
    if "or" in vr:
        raise SlowPath  # e.g. "US or SS": depends on PixelRepresentation; pydicom resolves it
    return vr


def _converted(elem: DataElement, bulk_uri: BulkUri, path: str) -> dict[str, Any]:
    return elem.to_json_dict(
        bulk_data_element_handler=lambda _: bulk_uri(path), bulk_data_threshold=BULK_DATA_THRESHOLD
    )


def _slow(ds: Dataset, bulk_uri: BulkUri, path: str) -> JsonDataset:
    out: JsonDataset = {}
    for elem in ds:
        if elem.tag.element == 0 or elem.tag.group == 0x0002:
            continue
        key = f"{elem.tag:08X}"
        if elem.VR == "SQ":
            out[key] = (
                {
                    "vr": "SQ",
                    "Value": [
                        _slow(item, bulk_uri, f"{path}{key}/{i}/")
                        for i, item in enumerate(elem.value)
                    ],
                }
                if elem.value
                else {"vr": "SQ"}
            )
        else:
            out[key] = _by_pydicom(ds, int(elem.tag), bulk_uri, f"{path}{key}")
    return out
