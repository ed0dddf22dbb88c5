"""PS3.4 C.2.2.2 attribute matching, turned into ClickHouse conditions with bound parameters.

Single value, universal (empty or `*`), wildcard (`*`, `?`), range (dates and times,
`a-b`, `-b`, `a-`), list of UIDs (backslash-separated), and for person names
case-insensitive matching (C.2.2.2.1 lets PN match case-insensitively; what users expect)
plus QIDO fuzzy matching (any name component starting with the value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra.catalog.attributes import LISTS, Attribute


class QueryError(ValueError):
    """The query cannot be run as asked; the message says which key and why."""


@dataclass
class Conditions:
    """WHERE clauses and their parameters, named so that any number can be combined."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any, kind: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{kind}}}"

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
            self.clauses.append(f"{column} IN {self.bind(uids, 'Array(String)')}")
        elif attribute.vr in ("DA", "TM", "DT") and "-" in value:
            self._range(attribute, value)
        elif attribute.numeric:
            try:
                number = int(value)
            except ValueError:
                raise QueryError(f"{attribute.keyword}: {value!r} is not an integer") from None
            self.clauses.append(f"{column} = {self.bind(number, 'Int64')}")
        elif attribute.vr == "PN":
            self._person_name(column, value, fuzzy)
        elif "*" in value or "?" in value:
            self.clauses.append(f"{column} LIKE {self.bind(like_pattern(value), 'String')}")
        elif attribute.vr in ("DA", "TM", "DT"):
            self.clauses.append(f"{column} = {self.bind(_dateish(attribute, value), 'String')}")
        else:
            self.clauses.append(f"{column} = {self.bind(value, 'String')}")

    def _list(self, column: str, value: str) -> None:
        wanted = [v.strip() for v in value.replace(",", "\\").split("\\") if v.strip()]
        if any("*" in v or "?" in v for v in wanted):
            patterns = [like_pattern(v) for v in wanted]
            bound = self.bind(patterns, "Array(String)")
            self.clauses.append(f"arrayExists(x -> arrayExists(p -> x LIKE p, {bound}), {column})")
        else:
            self.clauses.append(f"hasAny({column}, {self.bind(wanted, 'Array(String)')})")

    def _range(self, attribute: Attribute, value: str) -> None:
        if value.count("-") != 1:
            raise QueryError(f"{attribute.keyword}: {value!r} is not a range like a-b, -b or a-")
        low, high = (_dateish(attribute, part.strip()) for part in value.split("-"))
        column = attribute.column
        if not low and not high:
            raise QueryError(f"{attribute.keyword}: a range needs at least one end")
        self.clauses.append(f"{column} != ''")
        if low:
            self.clauses.append(f"{column} >= {self.bind(low, 'String')}")
        if high:
            # Compare only as many digits as the bound has: "1200" includes 12:00:30.
            bound = self.bind(high, "String")
            self.clauses.append(f"substring({column}, 1, length({bound})) <= {bound}")

    def _person_name(self, column: str, value: str, fuzzy: bool) -> None:
        if fuzzy:
            # Any component (family, given, …) starting with the value, case-insensitive.
            bound = self.bind(value.replace("*", "").lower(), "String")
            self.clauses.append(
                f"arrayExists(x -> startsWith(x, {bound}), "
                f"splitByRegexp('[\\\\^= ]', lower({column})))"
            )
        elif "*" in value or "?" in value:
            self.clauses.append(f"{column} ILIKE {self.bind(like_pattern(value), 'String')}")
        else:
            self.clauses.append(f"lower({column}) = {self.bind(value.lower(), 'String')}")

    def where(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"


def like_pattern(value: str) -> str:
    """DICOM wildcards to a LIKE pattern; LIKE's own metacharacters are escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


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
