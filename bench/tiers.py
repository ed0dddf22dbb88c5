"""Storage tiers: how fast a study moves between tiers, and what a read costs from each.

Starts a platform whose hot and warm tiers are SeaweedFS buckets and whose cold tier is an
Azure container on Azurite (npm, `make azurite`), sends a CT study with DCMTK's storescu,
then, for hot, warm and cold in turn: WADO-RS latency of single instances (P50/P95, the
same instances each time), and the move to the next tier (MB/s, from the request to the
job's completion). Orthanc, which has no tiers, serves the same instances over WADO-RS
from its disk as the reference.

    .venv/bin/python bench/tiers.py --images 200 --reads 100
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.ingest_vs_orthanc import _start_stack, platform_settings
from bench.sustained_ingest import quantiles
from infra.settings import LandingMode, Settings, TierSettings
from infra.stack import LocalStack
from tests.azurite import Azurite
from tests.dicom_factory import ct_series, write_series
from tests.login import login_admin
from tests.orthanc import Orthanc
from tests.ports import free_port

BASE = 35000


def store(files: list[Path], host: str, port: int, aec: str) -> None:
    done = subprocess.run(
        ["storescu", "-aet", "BENCH", "-aec", aec, host, str(port), *map(str, files)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"storescu failed: {done.stderr[-500:]}")


def read_latency(
    base: str, headers: dict[str, str], refs: list[tuple[str, str, str]]
) -> dict[str, float]:
    """Milliseconds per WADO-RS instance retrieve, one after another on one connection."""
    times = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for study, series, sop in refs:
            started = time.perf_counter()
            answer = client.get(
                f"/studies/{study}/series/{series}/instances/{sop}",
                headers={"Accept": 'multipart/related; type="application/dicom"'},
            )
            times.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    return quantiles(times)


def wait_job(client: httpx.Client, url: str) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = client.get(url).json()
        if job["status"] in ("Completed", "Failed", "Terminated"):
            return job
        time.sleep(0.1)


def measure(settings: Settings, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    headers = login_admin(settings)
    images = list(ct_series(args.images, size=args.size, patient_id="BENCH-TIERS"))
    files = write_series(workdir / "ct", images)
    study = str(images[0].StudyInstanceUID)
    store(files, settings.dicom.host, settings.dicom.port, "PACS")
    http = f"http://{settings.http.host}:{settings.http.port}"
    client = httpx.Client(base_url=http, headers=headers, timeout=60)
    while True:
        listed = client.get(f"/api/studies/{study}/storage")
        rows = listed.json() if listed.status_code == 200 else []
        if len(rows) == args.images and {r["tier"] for r in rows} == {"hot"}:
            break
        time.sleep(0.5)
    total = sum(p.stat().st_size for p in files)
    refs = [(study, str(d.SeriesInstanceUID), str(d.SOPInstanceUID)) for d in images]
    chosen = random.Random(7).sample(refs, min(args.reads, len(refs)))
    results: dict[str, Any] = {"images": args.images, "MB": round(total / 1e6, 1)}
    for tier, next_tier in (("hot", "warm"), ("warm", "cold"), ("cold", None)):
        read_latency(f"{http}/dicom-web", headers, chosen[:5])  # open the connections
        results[f"wado {tier} ms"] = read_latency(f"{http}/dicom-web", headers, chosen)
        if next_tier is None:
            break
        started = time.perf_counter()
        moved = client.post(f"/api/studies/{study}/migrate", json={"tier": next_tier})
        moved.raise_for_status()
        job = wait_job(client, moved.json()["status_url"])
        seconds = time.perf_counter() - started
        assert job["status"] == "Completed", job
        mb = job["result"]["bytes_moved"] / 1e6
        results[f"move {tier}->{next_tier}"] = {
            "seconds": round(seconds, 2), "MB/s": round(mb / seconds, 1),
            "instances/s": round(job["result"]["moved"] / seconds, 1),
        }  # fmt: skip
    if not args.skip_orthanc:
        orthanc = Orthanc(workdir, free_port(), free_port(), dicomweb=True)
        orthanc.start()
        try:
            store(files, "127.0.0.1", orthanc.dicom_port, "ORTHANC")
            read_latency(f"{orthanc.url}/dicom-web", {}, chosen[:5])
            results["orthanc wado ms"] = read_latency(f"{orthanc.url}/dicom-web", {}, chosen)
        finally:
            orthanc.stop()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=512, help="rows and columns of each image")
    parser.add_argument("--reads", type=int, default=100, help="instances read per tier")
    parser.add_argument("--skip-orthanc", action="store_true")
    args = parser.parse_args()
    if shutil.which("storescu") is None:
        raise SystemExit("DCMTK is missing: make debian-tools")
    workdir = Path(tempfile.mkdtemp(prefix="bench-tiers-"))
    azurite = Azurite(workdir / "azurite", free_port())
    azurite.start()
    settings = platform_settings(workdir / "platform", BASE, LandingMode.SPOOL, 2.0)
    settings.tiers.cold = TierSettings(
        backend="azure", bucket="pacs-cold", azure_connection_string=azurite.connection_string
    )
    stack = LocalStack(settings)
    try:
        await _start_stack(stack)
        results = await asyncio.to_thread(measure, settings, args, workdir)
        for name, value in results.items():
            print(f"{name}: {value}")
    finally:
        stack.stop_all()
        azurite.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
