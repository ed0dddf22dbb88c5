"""Consumer pacing: a busy live log is fetched in larger bites, a backlog at full pace."""

from __future__ import annotations

import asyncio
import time

from aiokafka.structs import ConsumerRecord

from infra.eventlog import PollPacer, newest_timestamp
from infra.readmodels.runner import LIVE_WITHIN_SECONDS, _live


def record(offset: int, timestamp_ms: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="pacs.events", partition=0, offset=offset, timestamp=timestamp_ms,
        timestamp_type=0, key=b"k", value=b"{}", checksum=None, serialized_key_size=1,
        serialized_value_size=2, headers=(),
    )  # fmt: skip


async def spacing(pacer: PollPacer) -> float:
    loop = asyncio.get_running_loop()
    await pacer.wait()
    started = loop.time()
    await pacer.wait()
    return loop.time() - started


async def test_a_big_fetch_spaces_the_next_by_the_busy_interval_and_a_small_one_does_not() -> None:
    pacer = PollPacer(0.02, busy_interval=0.3, busy_records=10)
    assert await spacing(pacer) < 0.2
    pacer.fetched(25)
    assert await spacing(pacer) >= 0.29
    pacer.fetched(3)  # the burst is over: a lone instance is searchable at once again
    assert await spacing(pacer) < 0.2


async def test_without_a_busy_interval_every_fetch_is_spaced_alike() -> None:
    pacer = PollPacer(0.02)
    pacer.fetched(10_000)
    assert await spacing(pacer) < 0.2


def test_only_records_written_just_now_count_as_a_busy_live_log() -> None:
    now = int(time.time() * 1000)
    live = [record(i, now - 100) for i in range(12)]
    assert _live(12, newest_timestamp([live[:5], live[5:]])) == 12
    # A rebuild or a restart reads old records: no pause between its fetches.
    old = [record(i, now - int(LIVE_WITHIN_SECONDS * 1000) - 60_000) for i in range(500)]
    assert _live(500, newest_timestamp([old])) == 0
    assert _live(501, newest_timestamp([old, [record(500, now)]])) == 501  # the live end
    assert newest_timestamp([]) is None and _live(0, None) == 0
