"""C-FIND attribute matching (PS3.4 C.2.2.2): used by the Modality Worklist SCP.

Supported: universal (empty key), single value, wildcard (`*`, `?`) on string VRs, range on
DA/TM/DT (`a-b`, `-b`, `a-`), list of UIDs (`a\\b`), and sequence matching (each key of the
query item must match within one item of the candidate's sequence). Person names match
case-insensitively, as our conformance statement says (C.2.2.2.1 leaves it to the SCP).
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

# Not matching keys: they say how to read the query, not what to match.
_CONTROL_KEYWORDS = {"SpecificCharacterSet", "QueryRetrieveLevel", "TimezoneOffsetFromUTC"}
_RANGE_VRS = {"DA", "TM", "DT"}
_NO_WILDCARD_VRS = {"DA", "TM", "DT", "UI", "SQ", "US", "SS", "UL", "SL", "FL", "FD", "AT"}


def is_universal(element: DataElement) -> bool:
    """An empty key (or a zero-length sequence / a sequence of one empty item)."""
    if element.VR == "SQ":
        items = element.value or []
        return not items or all(_empty_item(item) for item in items)
    return element.value in (None, "", b"") or (
        isinstance(element.value, list | tuple | MultiValue) and not element.value
    )


def _empty_item(item: Dataset) -> bool:
    return all(is_universal(elem) for elem in item)


def _text(value: object) -> str:
    return str(value).strip() if value is not None else ""


@lru_cache(maxsize=512)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _in_range(query: str, value: str) -> bool:
    low, _, high = query.partition("-")
    value = value.strip()
    # DA/TM/DT values of one VR compare as strings once trimmed to the query's precision.
    if low and value[: len(low)] < low:
        return False
    return not (high and value[: len(high)] > high)


def _values(element: DataElement) -> list[str]:
    value = element.value
    if isinstance(value, list | tuple | MultiValue):
        return [_text(v) for v in value]
    return [_text(value)]


def value_matches(query: DataElement, candidate: DataElement | None) -> bool:
    """Does the candidate's value satisfy one non-sequence key?"""
    if is_universal(query):
        return True
    if candidate is None or is_universal(candidate):
        return False
    vr = query.VR
    if vr == "UI":
        wanted = set(_values(query))
        return any(v in wanted for v in _values(candidate))
    wanted_text = _values(query)[0]
    if vr in _RANGE_VRS and "-" in wanted_text:
        return any(_in_range(wanted_text, v) for v in _values(candidate))
    ignore_case = vr == "PN"
    if vr not in _NO_WILDCARD_VRS and ("*" in wanted_text or "?" in wanted_text):
        pattern = _wildcard(wanted_text, ignore_case)
        return any(pattern.match(v) for v in _values(candidate))
    if ignore_case:
        return any(v.casefold() == wanted_text.casefold() for v in _values(candidate))
    return any(v == wanted_text for v in _values(candidate))


def matches(identifier: Dataset, candidate: Dataset) -> bool:
    """Every key of the identifier matches the candidate (sequence keys item-wise)."""
    for element in identifier:
        if element.keyword in _CONTROL_KEYWORDS or element.tag.is_private:
            continue
        other = candidate.get(element.tag)
        if element.VR == "SQ":
            if is_universal(element):
                continue
            query_item = element.value[0]
            items: Sequence | list[Dataset] = other.value if other is not None else []
            if not any(matches(query_item, item) for item in items):
                return False
        elif not value_matches(element, other):
            return False
    return True


def response(identifier: Dataset, candidate: Dataset) -> Dataset:
    """The identifier's keys with the candidate's values (absent ones returned empty)."""
    out = Dataset()
    for element in identifier:
        if element.keyword in _CONTROL_KEYWORDS or element.tag.is_private:
            continue
        other = candidate.get(element.tag)
        if element.VR == "SQ":
            query_items = element.value or []
            if other is None or not other.value:
                out.add_new(element.tag, "SQ", [])
            elif not query_items or (_empty_item(query_items[0]) and not len(query_items[0])):
                out.add(other)  # an empty sequence key asks for the whole sequence
            else:
                query_item = query_items[0]
                chosen = [item for item in other.value if matches(query_item, item)]
                out.add_new(element.tag, "SQ", [response(query_item, item) for item in chosen])
        elif other is not None:
            out.add(other)
        else:
            out.add_new(element.tag, element.VR, None)
    return out
