"""The contract every projection follows, and the record shape the projector feeds it.

A projection writes its rows together with the log position they reflect (in the same
insert), so it can resume after a crash from what it wrote, and `drop()` + replay from
offset zero rebuilds it. Applying the same record twice must change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.events import Event


@dataclass(frozen=True)
class LogRecord:
    """One decoded event and where it sits on the log."""

    partition: int
    offset: int
    event: Event
    raw: bytes


class Projection(Protocol):
    """A read model fed by the projector; all methods are called from one worker thread."""

    name: str
    # Its ClickHouse tables, for status and for comparing a rebuild with the live copy.
    tables: tuple[str, ...]

    def ensure_tables(self) -> None:
        """Create the tables if missing (idempotent)."""
        ...

    def positions(self) -> dict[int, int]:
        """The highest log offset applied, per partition (empty = start from zero)."""
        ...

    def apply(self, records: list[LogRecord]) -> None:
        """Apply a batch in log order; records at or below `positions()` may recur."""
        ...

    def drop(self) -> None:
        """Remove every table, so the next `ensure_tables` + replay rebuilds from zero."""
        ...
