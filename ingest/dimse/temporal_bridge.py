"""Calls into Temporal from pynetdicom's handler threads, on the gateway's event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import Client

from infra.settings import TemporalSettings
from infra.temporal_client import connect_temporal

T = TypeVar("T")


class TemporalBridge:
    """Connects on first use, so the gateway serves C-STORE even while Temporal is down."""

    def __init__(self, settings: TemporalSettings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await connect_temporal(self.settings, attempts=3)
            return self._client

    def submit(self, call: Callable[[Client], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Run `call(client)` on the loop; the caller's thread keeps going."""

        async def run() -> T:
            return await call(await self.client())

        return asyncio.run_coroutine_threadsafe(run(), self.loop)

    def call(self, call: Callable[[Client], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run `call(client)` on the loop and wait for its result (from a handler thread)."""
        return self.submit(call).result(timeout)
