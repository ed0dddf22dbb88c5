"""Rules the dispatcher applies (routing, prefetch), read from the API at most every
second: a rule saved now applies to what arrives from about a second later on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
Rule = TypeVar("Rule")


class RulesCache(Generic[Rule]):
    def __init__(self, fetch: Callable[[], list[Rule]], what: str) -> None:
        self._fetch = fetch
        self._what = what
        self._rules: list[Rule] = []
        self._read_at = float("-inf")

    async def current(self) -> list[Rule]:
        if time.monotonic() - self._read_at >= REFRESH_SECONDS:
            try:
                self._rules = await asyncio.to_thread(self._fetch)
                self._read_at = time.monotonic()
            except (OSError, ValueError) as exc:
                # The API restarting: apply the rules last read, ask again next time.
                log.warning("cannot read the %s rules: %s", self._what, exc)
        return self._rules
