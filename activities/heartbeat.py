"""Long activity work that tells Temporal it is alive while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

# Well inside the workflows' heartbeat timeouts (e.g. ARCHIVE_HEARTBEAT_TIMEOUT): a worker
# that died is told from one copying large objects or de-identifying a big study.
HEARTBEAT_EVERY_SECONDS = 5.0

T = TypeVar("T")


async def heartbeating(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating meanwhile."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY_SECONDS)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()
