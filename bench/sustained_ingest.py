"""Sustained durable ingest: 10,000 CT images over 4 associations, our platform against Orthanc.

Four `storescu` processes (one per simulated modality) each send their share of studies of
`--per-study` images to Orthanc, then to our platform (fsync'd spool landing by default),
the same files to both. For our platform it then waits until archiving has caught up, and
reports what a PACS administrator would watch during a long day:

- images/s while sending, and to the last instance archived (the rate archiving sustains);
- the landing backlog sampled every second (is it bounded, does it drain);
- the archive lag of every instance, from its received event to its stored event (read
  back from the event log: exact per instance, not a histogram estimate), P50/P95/max;
- CPU milliseconds per image of every process, while sending and in all.

    .venv/bin/python bench/sustained_ingest.py [--images 10000] [--landing spool|s3]

Results are printed and written to `bench/results/sustained-<timestamp>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from minio import Minio  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.ingest_vs_orthanc import (  # noqa: E402
    MB,
    ORTHANC_AET,
    _start_stack,
    console,
    cpu_delta,
    cpu_snapshot,
    landing_count,
    platform_settings,
    storescu,
)
from infra.eventlog import make_consumer  # noqa: E402
from infra.settings import LandingMode, Settings  # noqa: E402
from infra.stack import LocalStack  # noqa: E402
from infra.storage.archive import make_minio  # noqa: E402
from schemas.events import InstanceReceived, InstanceStored, parse_event  # noqa: E402
from tests.dicom_factory import ct_series, write_series  # noqa: E402
from tests.login import login_admin as login  # noqa: E402
from tests.orthanc import Orthanc  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ASSOCIATIONS = 4


@dataclass
class Workload:
    folders: list[Path]
    studies: list[str]
    sops: dict[str, str]  # SOP Instance UID -> its study
    total_bytes: int


def make_workload(root: Path, images: int, per_study: int) -> Workload:
    """Studies of `per_study` CT images; study j goes to association j % 4, as if four
    modalities each sent their own patients' studies."""
    folders = [root / f"assoc{i}" for i in range(ASSOCIATIONS)]
    studies: list[str] = []
    sops: dict[str, str] = {}
    total = 0
    for j in range((images + per_study - 1) // per_study):
        count = min(per_study, images - j * per_study)
        study = generate_uid()
        paths = write_series(
            folders[j % ASSOCIATIONS],
            ct_series(count, study_uid=study, patient_id=f"SUSTAIN-{j:04d}"),
        )
        studies.append(study)
        sops.update({p.stem: study for p in paths})
        total += sum(p.stat().st_size for p in paths)
    return Workload(folders, studies, sops, total)


@dataclass
class Sampler:
    """Counts the landing area every second on a thread while the run goes on."""

    settings: Settings
    started: float = field(default_factory=time.perf_counter)
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._client = make_minio(self.settings.s3)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            count = landed_now(self.settings, self._client)
            self.samples.append((round(time.perf_counter() - self.started, 1), count))

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.samples


def landed_now(settings: Settings, client: Minio) -> int:
    """The landing area's count; a study folder the worker drops mid-walk means a retry."""
    for _ in range(10):
        try:
            return landing_count(settings, client)
        except FileNotFoundError:
            continue
    return landing_count(settings, client)


def archived_total(settings: Settings, workload: Workload) -> int:
    client = make_minio(settings.s3)
    total = 0
    for study in workload.studies:
        objects = client.list_objects(settings.s3.archive_bucket, f"{study}/", recursive=True)
        total += sum(1 for o in objects if not str(o.object_name).startswith("versions/"))
    return total


def archive_lags(settings: Settings, sops: dict[str, str]) -> list[float]:
    """Received -> stored, seconds, of each of our instances, from the event log."""

    async def read() -> list[float]:
        consumer = make_consumer(settings.kafka, f"bench-sustained-{generate_uid()}")
        await consumer.start()
        received: dict[str, datetime] = {}
        lags: dict[str, float] = {}
        try:
            idle_since = time.monotonic()
            while len(lags) < len(sops) and time.monotonic() - idle_since < 30:
                polled = await consumer.getmany(timeout_ms=1000, max_records=5000)
                if polled:
                    idle_since = time.monotonic()
                for record in (r for rs in polled.values() for r in rs):
                    if record.value is None:
                        continue
                    event = parse_event(record.value)
                    if isinstance(event, InstanceReceived | InstanceStored):
                        sop = event.instance.sop_instance_uid
                        if sop not in sops:
                            continue
                        if isinstance(event, InstanceReceived):
                            received.setdefault(sop, event.occurred_at)
                        elif sop in received and sop not in lags:
                            lags[sop] = (event.occurred_at - received[sop]).total_seconds()
        finally:
            await consumer.stop()
        return list(lags.values())

    return asyncio.run(read())


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100) if len(ordered) > 1 else ordered * 99
    return {
        "n": len(ordered),
        "p50": round(cuts[49], 2),
        "p95": round(cuts[94], 2),
        "max": round(ordered[-1], 2),
    }


def spot_check(settings: Settings, workload: Workload, count: int = 5) -> tuple[int, int]:
    """WADO-RS GETs of a few instances spread over the run: (answered 200, asked)."""
    base = f"http://{settings.http.host}:{settings.http.port}/dicom-web"
    picks = list(workload.sops.items())[:: max(1, len(workload.sops) // count)][:count]
    good = 0
    with httpx.Client(headers=login(settings), timeout=60) as client:
        for sop, study in picks:
            response = client.get(
                f"{base}/studies/{study}/instances?SOPInstanceUID={sop}",
            )
            if response.status_code == 200 and response.json():
                series = response.json()[0]["0020000E"]["Value"][0]
                got = client.get(
                    f"{base}/studies/{study}/series/{series}/instances/{sop}",
                    headers={"Accept": "multipart/related; type=application/dicom"},
                )
                good += got.status_code == 200
    return good, len(picks)


def per_image_ms(cpu: dict[str, float], images: int) -> dict[str, float]:
    return {name: round(seconds * 1000 / images, 2) for name, seconds in cpu.items()}


def run_orthanc(args: argparse.Namespace, workdir: Path, workload: Workload) -> dict[str, Any]:
    console.rule("Orthanc")
    orthanc = Orthanc(workdir, args.orthanc_dicom_port, args.orthanc_http_port)
    try:
        console.print(f"  Orthanc {orthanc.start()}")
        pids = {"orthanc": orthanc.proc.pid if orthanc.proc else None}
        before = cpu_snapshot(pids)
        sent = storescu(ORTHANC_AET, orthanc.dicom_port, workload.folders, workdir / "logs-o")
        cpu = cpu_delta(before, cpu_snapshot(pids))
        stored = orthanc.instance_count()
    finally:
        orthanc.stop()
    images = len(workload.sops)
    result = {
        "ok": sent.ok and stored == images,
        "stored": stored,
        "send_seconds": round(sent.seconds, 1),
        "images_per_second": round(images / sent.seconds, 1),
        "mb_per_second": round(workload.total_bytes / MB / sent.seconds, 1),
        "cpu_ms_per_image": per_image_ms(cpu, images),
    }
    console.print(f"  {result}")
    return result


def run_ours(args: argparse.Namespace, workdir: Path, workload: Workload) -> dict[str, Any]:
    landing = LandingMode(args.landing)
    console.rule(f"our platform, landing={landing.value}")
    settings = platform_settings(workdir / "ours", args.base, landing, args.stable_after)
    stack = LocalStack(settings)
    images = len(workload.sops)
    try:
        asyncio.run(_start_stack(stack))
        pids = {proc.name: proc.pid for proc in stack.all_processes()}
        sampler = Sampler(stack.settings)
        at_start = cpu_snapshot(pids)
        sent = storescu(
            settings.dicom.ae_title, settings.dicom.port, workload.folders, workdir / "logs-u"
        )
        at_sent = cpu_snapshot(pids)
        console.print(f"  sent in {sent.seconds:.1f} s, ok={sent.ok}; waiting for the archive")
        deadline = time.perf_counter() + args.archive_timeout
        while landed_now(stack.settings, make_minio(stack.settings.s3)) > 0:
            if time.perf_counter() > deadline:
                break
            time.sleep(0.5)
        caught_up = time.perf_counter() - sampler.started
        at_end = cpu_snapshot(pids)
        backlog = sampler.stop()
        archived = archived_total(stack.settings, workload)
        lags = archive_lags(stack.settings, workload.sops)
        good, asked = spot_check(stack.settings, workload)
    finally:
        stack.stop_all()
    during_send = [count for t, count in backlog if t <= sent.seconds]
    result = {
        "ok": sent.ok and archived == images and good == asked,
        "archived": archived,
        "wado_rs": f"{good}/{asked}",
        "send_seconds": round(sent.seconds, 1),
        "images_per_second": round(images / sent.seconds, 1),
        "mb_per_second": round(workload.total_bytes / MB / sent.seconds, 1),
        "archived_seconds": round(caught_up, 1),
        "archived_images_per_second": round(images / caught_up, 1),
        "backlog_max": max((c for _, c in backlog), default=0),
        "backlog_at_send_end": during_send[-1] if during_send else 0,
        "backlog_samples": backlog,
        "archive_lag_seconds": quantiles(lags),
        "cpu_ms_per_image_send": per_image_ms(cpu_delta(at_start, at_sent), images),
        "cpu_ms_per_image_total": per_image_ms(cpu_delta(at_start, at_end), images),
    }
    console.print({k: v for k, v in result.items() if k != "backlog_samples"})
    return result


def print_table(ours: dict[str, Any], orthanc: dict[str, Any] | None, images: int) -> None:
    table = Table(title=f"Sustained ingest, {images:,} CT images over 4 associations")
    for name in ("measure", "ours", "Orthanc", "ratio"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    base = orthanc or {}
    for key, label in (
        ("images_per_second", "images/s while sending"),
        ("archived_images_per_second", "images/s to the last archived"),
        ("mb_per_second", "MB/s while sending"),
    ):
        theirs = base.get("images_per_second" if key.startswith("archived") else key)
        ratio = f"{ours[key] / theirs:.2f}x" if theirs else "-"
        table.add_row(label, str(ours[key]), str(theirs or "-"), ratio)
    console.print(table)
    lag = ours["archive_lag_seconds"]
    console.print(
        f"archive lag P50 {lag.get('p50')} s, P95 {lag.get('p95')} s, max {lag.get('max')} s; "
        f"landing backlog max {ours['backlog_max']}, at send end {ours['backlog_at_send_end']}"
    )
    cpu = Table(title="CPU ms per image")
    cpu.add_column("process")
    cpu.add_column("while sending", justify="right")
    cpu.add_column("send + archive catch-up", justify="right")
    send, total = ours["cpu_ms_per_image_send"], ours["cpu_ms_per_image_total"]
    for name in sorted(total, key=lambda n: -total[n]):
        cpu.add_row(name, f"{send[name]:.2f}", f"{total[name]:.2f}")
    cpu.add_row("all", f"{sum(send.values()):.2f}", f"{sum(total.values()):.2f}")
    if orthanc:
        cpu.add_row("Orthanc", f"{orthanc['cpu_ms_per_image']['orthanc']:.2f}", "")
    console.print(cpu)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--per-study", type=int, default=250, help="images per study")
    parser.add_argument("--landing", choices=["spool", "s3"], default="spool")
    parser.add_argument("--base", type=int, default=16000, help="port base of our stack")
    parser.add_argument("--stable-after", type=float, default=5.0)
    parser.add_argument("--archive-timeout", type=float, default=1800.0)
    parser.add_argument("--orthanc-dicom-port", type=int, default=16112)
    parser.add_argument("--orthanc-http-port", type=int, default=16042)
    parser.add_argument("--skip-orthanc", action="store_true")
    parser.add_argument("--workdir", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = datetime.now(UTC)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="pacs-sustained-"))).resolve()
    console.print(f"work dir {workdir}")
    t0 = time.perf_counter()
    workload = make_workload(workdir / "data", args.images, args.per_study)
    console.print(
        f"  {len(workload.sops):,} images in {len(workload.studies)} studies written in "
        f"{time.perf_counter() - t0:.0f} s ({workload.total_bytes / MB:,.0f} MB)"
    )
    orthanc = None if args.skip_orthanc else run_orthanc(args, workdir, workload)
    shutil.rmtree(workdir / "orthanc", ignore_errors=True)  # its storage: disk for ours
    ours = run_ours(args, workdir, workload)
    print_table(ours, orthanc, len(workload.sops))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"sustained-{started:%Y%m%dT%H%M%S}.json"
    payload = {"started": started.isoformat(), "parameters": vars(args) | {"workdir": None}}
    path.write_text(json.dumps({**payload, "orthanc": orthanc, "ours": ours}, indent=2) + "\n")
    console.print(f"results written to {path.relative_to(ROOT)}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ours["ok"] and (orthanc is None or orthanc["ok"]) else 1


if __name__ == "__main__":
    sys.exit(main())
