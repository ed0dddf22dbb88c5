"""PS3.4 C.2.2.2 attribute matching: the platform's one set of matching rules.

Two front ends share the value rules (`wildcard_regex`, `in_range`): `Conditions` turns
query keys into ClickHouse conditions plus the same tests in Python (the catalog: C-FIND,
QIDO); `matches`/`response` apply them to pydicom datasets, with sequence matching (each
key of the query item must match within one item of the candidate's sequence), for the
Modality Worklist SCP.

Single value, universal (empty or `*`), wildcard (`*`, `?`), range (dates and times,
`a-b`, `-b`, `a-`), list of UIDs (backslash-separated), and for person names
case-insensitive matching (C.2.2.2.1 lets PN match case-insensitively; what users expect)
plus QIDO fuzzy matching (any name component starting with the value).

Each key is parsed once into a SQL clause with bound parameters *and* a Python test of a
column value, so the catalog's in-memory levels (`resident.py`) match exactly what
ClickHouse would; `lookups` names the exact values a key pins, for index look-ups.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from infra.readmodels.catalog.attributes import LISTS, Attribute

Test = Callable[[Any], bool]
# Person name components are separated by ^ (and = between groups); QIDO fuzzy matching
# also treats spaces as separators.
_NAME_PARTS = r"[\^= ]"
_NAME_PARTS_SQL = _NAME_PARTS.replace("\\", "\\\\")  # inside a ClickHouse string literal


class QueryError(ValueError):
    """The query cannot be run as asked; the message says which key and why."""


@dataclass
class Conditions:
    """WHERE clauses and their parameters, named so that any number can be combined."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    # The same conditions as (column, test of that column's value).
    tests: list[tuple[str, Test]] = field(default_factory=list)
    # column -> the only values it may have (single values and UID lists).
    lookups: dict[str, frozenset[str]] = field(default_factory=dict)

    def bind(self, value: Any, kind: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{kind}}}"

    def _both(self, column: str, clause: str, test: Test) -> None:
        self.clauses.append(clause)
        self.tests.append((column, test))

    def _equals(self, column: str, value: Any, kind: str) -> None:
        self._both(column, f"{column} = {self.bind(value, kind)}", lambda v: v == value)
        if isinstance(value, str):
            self._pin(column, frozenset((value,)))

    def _pin(self, column: str, values: frozenset[str]) -> None:
        previous = self.lookups.get(column)
        self.lookups[column] = values if previous is None else previous & values

    def within(self, column: str, values: frozenset[str]) -> None:
        """Narrow to rows whose `column` is one of `values` (a caller's visible studies)."""
        clause = f"{column} IN {self.bind(sorted(values), 'Array(String)')}"
        self._both(column, clause, lambda v: v in values)
        self._pin(column, values)

    def add(self, attribute: Attribute, value: str, fuzzy: bool = False) -> None:
        """Narrow by `attribute` matching `value` (DICOM string form); universal adds nothing."""
        value = value.strip()
        if value in ("", "*"):
            return
        column = attribute.column
        if attribute.keyword in LISTS:
            self._list(column, value)
        elif attribute.vr == "UI":
            uids = [uid.strip() for uid in value.split("\\") if uid.strip()]
            wanted = frozenset(uids)
            clause = f"{column} IN {self.bind(uids, 'Array(String)')}"
            self._both(column, clause, lambda v: v in wanted)
            self._pin(column, wanted)
        elif attribute.vr in ("DA", "TM", "DT") and "-" in value:
            self._range(attribute, value)
        elif attribute.numeric:
            try:
                number = int(value)
            except ValueError:
                raise QueryError(f"{attribute.keyword}: {value!r} is not an integer") from None
            self._equals(column, number, "Int64")
        elif attribute.vr == "PN":
            self._person_name(column, value, fuzzy)
        elif "*" in value or "?" in value:
            regex = wildcard_regex(value)
            clause = f"{column} LIKE {self.bind(like_pattern(value), 'String')}"
            self._both(column, clause, lambda v: regex.fullmatch(v) is not None)
        elif attribute.vr in ("DA", "TM", "DT"):
            self._equals(column, _dateish(attribute, value), "String")
        else:
            self._equals(column, value, "String")

    def _list(self, column: str, value: str) -> None:
        wanted = [v.strip() for v in value.replace(",", "\\").split("\\") if v.strip()]
        if any("*" in v or "?" in v for v in wanted):
            patterns = [like_pattern(v) for v in wanted]
            regexes = [wildcard_regex(v) for v in wanted]
            bound = self.bind(patterns, "Array(String)")
            self._both(
                column,
                f"arrayExists(x -> arrayExists(p -> x LIKE p, {bound}), {column})",
                lambda v: any(r.fullmatch(x) for x in v for r in regexes),
            )
        else:
            members = frozenset(wanted)
            clause = f"hasAny({column}, {self.bind(wanted, 'Array(String)')})"
            self._both(column, clause, lambda v: any(x in members for x in v))

    def _range(self, attribute: Attribute, value: str) -> None:
        if value.count("-") != 1:
            raise QueryError(f"{attribute.keyword}: {value!r} is not a range like a-b, -b or a-")
        low, high = (_dateish(attribute, part.strip()) for part in value.split("-"))
        column = attribute.column
        if not low and not high:
            raise QueryError(f"{attribute.keyword}: a range needs at least one end")
        clauses = [f"{column} != ''"]
        if low:
            clauses.append(f"{column} >= {self.bind(low, 'String')}")
        if high:
            # Compare only as many digits as the bound has: "1200" includes 12:00:30.
            bound = self.bind(high, "String")
            clauses.append(f"substring({column}, 1, length({bound})) <= {bound}")
        self._both(
            column,
            " AND ".join(clauses),
            lambda v: v != "" and in_range(low, high, v),
        )

    def _person_name(self, column: str, value: str, fuzzy: bool) -> None:
        if fuzzy:
            # Any component (family, given, …) starting with the value, case-insensitive.
            prefix = value.replace("*", "").lower()
            bound = self.bind(prefix, "String")
            self._both(
                column,
                f"arrayExists(x -> startsWith(x, {bound}), "
                f"splitByRegexp('{_NAME_PARTS_SQL}', "
                f"lowerUTF8({column})))",
                lambda v: any(p.startswith(prefix) for p in re.split(_NAME_PARTS, v.lower())),
            )
        elif "*" in value or "?" in value:
            regex = wildcard_regex(value, ignore_case=True)
            clause = f"{column} ILIKE {self.bind(like_pattern(value), 'String')}"
            self._both(column, clause, lambda v: regex.fullmatch(v) is not None)
        else:
            lowered = value.lower()
            clause = f"lowerUTF8({column}) = {self.bind(lowered, 'String')}"
            self._both(column, clause, lambda v: v.lower() == lowered)

    def where(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"


def like_pattern(value: str) -> str:
    """DICOM wildcards to a LIKE pattern; LIKE's own metacharacters are escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


@lru_cache(maxsize=512)
def wildcard_regex(value: str, ignore_case: bool = False) -> re.Pattern[str]:
    """DICOM wildcards as a regular expression matching (in full) what `like_pattern` does."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def in_range(low: str, high: str, value: str) -> bool:
    """DA/TM/DT range test; values of one VR compare as strings, the upper bound only to its
    own precision ("1200" includes 12:00:30). An empty end is open."""
    return (not low or value >= low) and (not high or value[: len(high)] <= high)


def _dateish(attribute: Attribute, value: str) -> str:
    """Dates as YYYYMMDD, times as HHMMSS.fff (old-style 2026.11.27 and 12:00 tolerated)."""
    if attribute.vr == "DA":
        digits = value.replace(".", "").replace("/", "")
        if "-" in digits or (digits and (len(digits) != 8 or not digits.isdigit())):
            raise QueryError(f"{attribute.keyword}: {value!r} is not a date (YYYYMMDD)")
        return digits
    if attribute.vr == "TM":
        text = value.replace(":", "")
        if text and not text.replace(".", "").isdigit():
            raise QueryError(f"{attribute.keyword}: {value!r} is not a time (HHMMSS)")
        return text
    return value


# --- The same rules over pydicom datasets (the MWL SCP matches worklist items this way) ---

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
        low, _, high = wanted_text.partition("-")
        return any(in_range(low.strip(), high.strip(), v) for v in _values(candidate))
    ignore_case = vr == "PN"
    if vr not in _NO_WILDCARD_VRS and ("*" in wanted_text or "?" in wanted_text):
        pattern = wildcard_regex(wanted_text, ignore_case)
        return any(pattern.fullmatch(v) for v in _values(candidate))
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
