"""ProjectorRunner.wait_caught_up: the barrier storage commitment waits on before it calls
an instance never received."""

from __future__ import annotations

import asyncio
from typing import Any

from infra.readmodels.runner import FETCH_WAIT_SECONDS, ProjectorRunner
from infra.settings import KafkaSettings


class Named:
    def __init__(self, name: str) -> None:
        self.name = name


def runner() -> ProjectorRunner:
    projections: Any = [Named("catalog"), Named("events")]
    return ProjectorRunner(None, KafkaSettings(), projections, 0.25)  # type: ignore[arg-type]


async def test_past_the_asking_gateways_positions_at_once() -> None:
    projector = runner()
    projector.applied = {"catalog": {0: 7}, "events": {0: 7}}
    assert await projector.wait_caught_up(0.5, {0: 7})
    # One read model behind, or a partition not reached: not yet.
    projector.applied["events"][0] = 6
    assert not await projector.wait_caught_up(0.2, {0: 7})
    assert not await projector.wait_caught_up(0.2, {0: 6, 1: 0})


async def test_an_empty_fetch_begun_after_the_request_proves_it_for_every_sender() -> None:
    projector = runner()
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(projector.wait_caught_up(5.0))
    await asyncio.sleep(0.05)
    # A fetch that began before the request (less its fetch wait) proves nothing about it.
    projector._note_fetch(loop.time(), empty=True)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    projector._note_fetch(loop.time() + FETCH_WAIT_SECONDS, empty=False)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    projector._note_fetch(loop.time() + FETCH_WAIT_SECONDS, empty=True)
    assert await waiting


async def test_nothing_proves_it_within_the_time_given() -> None:
    assert not await runner().wait_caught_up(0.1)
