"""A 1 GB STOW-RS request (40 x 25 MiB multi-frame objects) is streamed, not held.

The API process's RSS is sampled every 100 ms while the client streams the body from disk;
its growth must stay under 300 MB, and /health/live must keep answering meanwhile. A platform
of its own (default limits): its fresh API gives a clean baseline, and the gigabyte it lands
is not still being archived while other modules' tests run.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Platform, eventually, platform_settings, running_platform
from tests.integration.stow_stream import StreamedBody, write_multiframe_series

pytestmark = pytest.mark.integration

PARTS = 40
FRAMES = 50  # 50 x 0.5 MiB = 25 MiB per object
MAX_RSS_GROWTH = 300 * 1000 * 1000
MAX_HEALTH_SECONDS = 2.0
REFERENCED = "00081199"


@pytest.fixture(scope="module")
async def big(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp_path_factory.mktemp("big"), base=18000)
    async with running_platform(settings) as node:
        yield node


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class Watch:
    """Samples a process's RSS and asks /health/live until stopped."""

    pid: int
    health_url: str
    rss: list[int] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    health_failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample_rss(self) -> None:
        while not self.stop.wait(0.1):
            self.rss.append(rss_bytes(self.pid))

    def ask_health(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(0.5):
                started = time.monotonic()
                try:
                    client.get(self.health_url).raise_for_status()
                except httpx.HTTPError as exc:
                    self.health_failures.append(repr(exc))
                self.health.append(time.monotonic() - started)

    def __enter__(self) -> Watch:
        self.threads = [threading.Thread(target=f) for f in (self.sample_rss, self.ask_health)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def api_pid(platform: Platform) -> int:
    (api,) = [p for p in platform.stack.app_processes() if p.name == "api"]
    assert api.pid is not None
    return api.pid


async def test_one_gigabyte_stow_grows_the_api_by_less_than_300_mb(
    big: Platform, tmp_path: Path
) -> None:
    platform = big
    paths = write_multiframe_series(tmp_path / "large", PARTS, FRAMES)
    body = StreamedBody(paths)
    assert len(body) > 1_000_000_000
    pid = api_pid(platform)
    baseline = statistics.median(rss_bytes(pid) for _ in range(5))

    def send() -> httpx.Response:
        # A generator body goes out chunked: the limit is counted as it streams.
        return platform.post(
            "/dicom-web/studies",
            content=iter(body),
            headers={"Content-Type": body.content_type, "Accept": "application/dicom+json"},
            timeout=600,
        )

    started = time.monotonic()
    with Watch(pid, f"{platform.http}/health/live") as watch:
        response = await asyncio.to_thread(send)
    seconds = time.monotonic() - started
    growth = max(watch.rss) - baseline
    print(
        f"\nSTOW {body.sent / 1e9:.2f} GB as {PARTS} parts in {seconds:.1f} s: API RSS "
        f"baseline {baseline / 1e6:.0f} MB, peak {max(watch.rss) / 1e6:.0f} MB, growth "
        f"{growth / 1e6:.0f} MB ({len(watch.rss)} samples); /health/live max "
        f"{max(watch.health, default=0):.3f} s over {len(watch.health)} calls"
    )
    assert response.status_code == 200, response.text[:2000]
    assert len(response.json()[REFERENCED]["Value"]) == PARTS
    assert growth <= MAX_RSS_GROWTH, f"API RSS grew by {growth / 1e6:.0f} MB"
    assert watch.health_failures == []
    assert max(watch.health) < MAX_HEALTH_SECONDS

    # The last part came through the streaming parser byte for byte.
    last = paths[-1]
    study, sop = _uids(response, last)
    expected = hashlib.sha256(last.read_bytes()).hexdigest()

    def retrieved() -> bool:
        got = platform.get(
            f"/dicom-web/studies/{study}/series/{sop[0]}/instances/{sop[1]}",
            headers={"Accept": "application/dicom"},
            timeout=120,
        )
        return got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == expected

    await eventually(retrieved, timeout=60, interval=1)


def _uids(response: httpx.Response, path: Path) -> tuple[str, tuple[str, str]]:
    sop = path.stem
    for item in response.json()[REFERENCED]["Value"]:
        url: str = item["00081190"]["Value"][0]
        if url.endswith(f"/instances/{sop}"):
            parts = url.split("/")
            return parts[parts.index("studies") + 1], (parts[parts.index("series") + 1], sop)
    raise AssertionError(f"{sop} not in the response")
