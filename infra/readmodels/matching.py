"""PS3.4 C.2.2.2 attribute matching, as ClickHouse conditions and as the same tests in Python.

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
from typing import Any

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
            lambda v: v != "" and (not low or v >= low) and (not high or v[: len(high)] <= high),
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


def wildcard_regex(value: str, ignore_case: bool = False) -> re.Pattern[str]:
    """DICOM wildcards as a regular expression matching what `like_pattern` matches."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


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
