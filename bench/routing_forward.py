"""Routing throughput and latency: every stored CT instance forwarded to a DCMTK `storescp`,
our platform against Orthanc, the same data, client and receiver.

- Ours: a routing rule `Modality=CT -> scp via dimse` (per instance), delivered by
  RouteDeliveryWorkflow in batches of 50 over one association.
- Orthanc: its auto-routing, a Lua `OnStoredInstance` that calls `SendToModality`.

Four `storescu` processes send the images; `storescp -uf` (unique file names, so a
duplicate shows as a second file) receives the forwarded copies. Reported per target:

- forwarding throughput: instances / (last copy at the receiver - start of sending);
- received -> delivered latency per instance, P50/P95/max: the copy's file time at the
  receiver minus the forwarder's own record of reception (ours: the `pacs.instance.received`
  event; Orthanc: the instance's ReceptionDate);
- delivered, missing, duplicates, and instances delivered out of their stored order per
  series.

`--outage S` (acceptance 2 of issue 13): the receiver stops once a third of the copies have
arrived and starts again S seconds later; a second receiver, routed to by a second rule,
stays up and must get everything on time. `--kill-worker` SIGKILLs our worker while it
delivers after the outage (it is started again at once, as `pacs up` would), so the run
also shows a crash mid-delivery: at most one batch sent twice, none lost.

    .venv/bin/python bench/routing_forward.py [--images 1000] [--outage 0] [--kill-worker]

Results are printed and written to `bench/results/routing-<timestamp>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pydicom  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.ingest_vs_orthanc import (  # noqa: E402
    LOOPBACK,
    ORTHANC_AET,
    _start_stack,
    console,
    platform_settings,
    storescu,
)
from bench.sustained_ingest import quantiles  # noqa: E402
from infra.eventlog import make_consumer  # noqa: E402
from infra.settings import LandingMode, Settings  # noqa: E402
from infra.stack import LocalStack  # noqa: E402
from schemas.events import InstanceReceived, parse_event  # noqa: E402
from tests.dicom_factory import ct_series, write_series  # noqa: E402
from tests.login import login_admin as login  # noqa: E402
from tests.orthanc import Orthanc  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ASSOCIATIONS = 4
SCP_AET = "FWDSCP"
# Orthanc's auto-routing as its documentation gives it: forward each stored instance.
ORTHANC_LUA = """
function OnStoredInstance(instanceId, tags, metadata, origin)
   SendToModality(instanceId, 'scp')
end
"""


@dataclass
class Workload:
    folders: list[Path]
    sops: dict[str, tuple[str, int]]  # SOP Instance UID -> (series, instance number)


def make_workload(root: Path, images: int, per_study: int) -> Workload:
    folders = [root / f"assoc{i}" for i in range(ASSOCIATIONS)]
    sops: dict[str, tuple[str, int]] = {}
    for j in range((images + per_study - 1) // per_study):
        count = min(per_study, images - j * per_study)
        datasets = list(ct_series(count, study_uid=generate_uid(), patient_id=f"FWD-{j:04d}"))
        # Each study through one association, as a modality sends it.
        write_series(folders[j % ASSOCIATIONS], iter(datasets))
        sops.update(
            {str(d.SOPInstanceUID): (str(d.SeriesInstanceUID), d.InstanceNumber) for d in datasets}
        )
    return Workload(folders, sops)


class StoreScp:
    """DCMTK's storescp with unique file names: every copy that arrives is one file."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TCP_NODELAY": "1"}
        self.proc = subprocess.Popen(
            ["storescp", "-aet", SCP_AET, "-uf", "-od", str(self.folder), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def count(self) -> int:
        return sum(1 for _ in self.folder.iterdir()) if self.folder.exists() else 0

    def copies(self) -> list[tuple[str, float]]:
        """(SOP Instance UID, arrival time) of every file, oldest first."""
        out = []
        for path in self.folder.iterdir():
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            out.append((str(ds.SOPInstanceUID), path.stat().st_mtime))
        return sorted(out, key=lambda c: c[1])


def wait_for(receiver: StoreScp, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while receiver.count() < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def summarize(
    name: str,
    workload: Workload,
    received_at: dict[str, float],
    receiver: StoreScp,
    sent_at: float,
) -> dict[str, Any]:
    copies = receiver.copies()
    counts = Counter(sop for sop, _ in copies if sop in workload.sops)
    first: dict[str, float] = {}
    for sop, at in copies:
        first.setdefault(sop, at)
    lags = [first[s] - received_at[s] for s in first if s in received_at]
    # Out of order: a copy that arrived before one of its series stored earlier.
    late = 0
    by_series: dict[str, list[str]] = {}
    for sop in sorted(received_at, key=received_at.__getitem__):
        if sop in workload.sops:
            by_series.setdefault(workload.sops[sop][0], []).append(sop)
    for series in by_series.values():
        arrivals = [first[s] for s in series if s in first]
        late += sum(1 for a, b in itertools.pairwise(arrivals) if b < a)
    last = max(first.values(), default=sent_at)
    images = len(workload.sops)
    return {
        "target": name,
        "delivered": len(counts),
        "missing": images - len(counts),
        "duplicates": sum(counts.values()) - len(counts),
        "out_of_order": late,
        "seconds_to_last_copy": round(last - sent_at, 1),
        "instances_per_second": round(len(counts) / (last - sent_at), 1) if last > sent_at else 0,
        "latency_seconds": quantiles(lags),
    }


# ---- Orthanc ----------------------------------------------------------------------------


def orthanc_reception(orthanc: Orthanc) -> dict[str, float]:
    """SOP Instance UID -> ReceptionDate (Orthanc writes it in UTC)."""
    out: dict[str, float] = {}
    with httpx.Client(base_url=orthanc.url, timeout=60) as client:
        for item in client.get("/instances", params={"expand": ""}).json():
            sop = item["MainDicomTags"]["SOPInstanceUID"]
            raw = client.get(f"/instances/{item['ID']}/metadata/ReceptionDate").text.strip()
            when = datetime.strptime(raw, "%Y%m%dT%H%M%S.%f" if "." in raw else "%Y%m%dT%H%M%S")
            out[sop] = when.replace(tzinfo=UTC).timestamp()
    return out


def run_orthanc(args: argparse.Namespace, workdir: Path, workload: Workload) -> dict[str, Any]:
    console.rule("Orthanc (Lua auto-routing)")
    receiver = StoreScp(workdir / "scp-orthanc", args.scp_port)
    orthanc = Orthanc(
        workdir / "o",
        args.orthanc_dicom_port,
        args.orthanc_http_port,
        modalities={"scp": (SCP_AET, LOOPBACK, args.scp_port)},
        lua=ORTHANC_LUA,
    )
    receiver.start()
    try:
        console.print(f"  Orthanc {orthanc.start()}")
        sent_at = time.time()
        outage = outage_thread(args, receiver, len(workload.sops)) if args.outage else None
        sent = storescu(ORTHANC_AET, orthanc.dicom_port, workload.folders, workdir / "logs-o")
        if outage is not None:
            outage.join()
        # Orthanc does not retry: what failed during an outage never comes; wait a while.
        wait_for(receiver, len(workload.sops), 60 if args.outage else args.deliver_timeout)
        time.sleep(2)
        result = summarize("Orthanc", workload, orthanc_reception(orthanc), receiver, sent_at)
        result["send_seconds"] = round(sent.seconds, 1)
    finally:
        orthanc.stop()
        receiver.stop()
    console.print(f"  {result}")
    return result


# ---- ours -------------------------------------------------------------------------------


def received_times(settings: Settings, sops: dict[str, Any]) -> dict[str, float]:
    """SOP Instance UID -> its first pacs.instance.received event, from the log."""

    async def read() -> dict[str, float]:
        consumer = make_consumer(settings.kafka, f"bench-routing-{generate_uid()}")
        await consumer.start()
        out: dict[str, float] = {}
        try:
            idle_since = time.monotonic()
            while len(out) < len(sops) and time.monotonic() - idle_since < 20:
                polled = await consumer.getmany(timeout_ms=1000, max_records=5000)
                if polled:
                    idle_since = time.monotonic()
                for record in (r for rs in polled.values() for r in rs):
                    event = parse_event(record.value) if record.value is not None else None
                    if isinstance(event, InstanceReceived):
                        sop = event.instance.sop_instance_uid
                        if sop in sops:
                            out.setdefault(sop, event.occurred_at.timestamp())
        finally:
            await consumer.stop()
        return out

    return asyncio.run(read())


def outage_thread(args: argparse.Namespace, receiver: StoreScp, images: int) -> threading.Thread:
    def run() -> None:
        wait_for(receiver, images // 3, args.deliver_timeout)
        receiver.stop()
        console.print(f"  receiver stopped at {receiver.count()} copies for {args.outage:.0f} s")
        time.sleep(args.outage)
        receiver.start()
        console.print("  receiver started again")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def configure(settings: Settings, args: argparse.Namespace) -> None:
    base = f"http://{settings.http.host}:{settings.http.port}"
    with httpx.Client(base_url=base, headers=login(settings), timeout=60) as client:
        # Two AE titles (the registry keeps one node per AE title); storescp answers any.
        for name, aet, port in (
            ("scp", SCP_AET, args.scp_port),
            ("scp-always", SCP_AET + "2", args.scp_port + 1),
        ):
            node = {"ae_title": aet, "host": LOOPBACK, "port": port, "health_check": False}
            client.put(f"/api/nodes/{name}", json=node).raise_for_status()
        rule = {"match": {"Modality": "CT"}, "destinations": ["scp"], "via": "dimse"}
        client.put("/api/routing/rules/forward-ct", json=rule).raise_for_status()
        if args.outage:
            always = rule | {"destinations": ["scp-always"]}
            client.put("/api/routing/rules/forward-ct-always", json=always).raise_for_status()
    time.sleep(2)  # the dispatcher re-reads rules every second


def kill_worker_mid_delivery(stack: LocalStack, receiver: StoreScp, images: int) -> str:
    """SIGKILL the worker once the receiver has some but not all of its copies."""
    start = receiver.count()
    deadline = time.monotonic() + 300
    while receiver.count() < min(start + 100, images - 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = next(p for p in stack.app_processes() if p.name == "worker")
    at = receiver.count()
    worker.kill()
    worker.start()
    console.print(f"  worker SIGKILLed at {at} copies and started again")
    return f"killed at {at} of {images} copies"


def run_ours(args: argparse.Namespace, workdir: Path, workload: Workload) -> dict[str, Any]:
    console.rule("our platform (routing rule, RouteDeliveryWorkflow)")
    settings = platform_settings(workdir / "ours", args.base, LandingMode.SPOOL, 5.0)
    stack = LocalStack(settings)
    receiver = StoreScp(workdir / "scp-ours", args.scp_port)
    always = StoreScp(workdir / "scp-always", args.scp_port + 1)
    images = len(workload.sops)
    extra: dict[str, Any] = {}
    try:
        asyncio.run(_start_stack(stack))
        configure(stack.settings, args)
        receiver.start()
        always.start()
        sent_at = time.time()
        outage = outage_thread(args, receiver, images) if args.outage else None
        sent = storescu(
            settings.dicom.ae_title, settings.dicom.port, workload.folders, workdir / "logs-u"
        )
        if args.outage:
            # The destination that stays up gets everything while the other one is down.
            wait_for(always, images, args.deliver_timeout)
            extra["second_destination_all_after_seconds"] = round(time.time() - sent_at, 1)
        if outage is not None:
            outage.join()
        if args.kill_worker:
            extra["kill"] = kill_worker_mid_delivery(stack, receiver, images)
        wait_for(receiver, images, args.deliver_timeout)
        time.sleep(2)  # any duplicate of the last batch
        received = received_times(stack.settings, workload.sops)
        result = summarize("ours", workload, received, receiver, sent_at)
        if args.outage:
            second = summarize("ours, always up", workload, received, always, sent_at)
            extra["second_destination"] = second
        result |= extra | {"send_seconds": round(sent.seconds, 1)}
    finally:
        stack.stop_all()
        receiver.stop()
        always.stop()
    console.print(f"  {result}")
    return result


def print_table(ours: dict[str, Any], orthanc: dict[str, Any] | None, images: int) -> None:
    table = Table(title=f"Forwarding {images:,} CT images to storescp")
    for name in ("measure", "ours", "Orthanc", "ratio"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    theirs = orthanc or {}
    rows = [
        ("instances/s delivered", "instances_per_second"),
        ("delivered", "delivered"),
        ("missing", "missing"),
        ("duplicates", "duplicates"),
        ("out of order", "out_of_order"),
    ]
    for label, key in rows:
        mine, other = ours[key], theirs.get(key)
        ratio = f"{mine / other:.2f}x" if key == "instances_per_second" and other else ""
        table.add_row(label, str(mine), str(other if other is not None else "-"), ratio)
    for q in ("p50", "p95", "max"):
        table.add_row(
            f"latency {q} (s)",
            str(ours["latency_seconds"].get(q)),
            str(theirs.get("latency_seconds", {}).get(q, "-")),
            "",
        )
    console.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--per-study", type=int, default=100)
    parser.add_argument("--outage", type=float, default=0.0, help="receiver down, seconds")
    parser.add_argument("--kill-worker", action="store_true")
    parser.add_argument("--deliver-timeout", type=float, default=1800.0)
    parser.add_argument("--base", type=int, default=16000, help="port base of our stack")
    parser.add_argument("--scp-port", type=int, default=16400)
    parser.add_argument("--orthanc-dicom-port", type=int, default=16112)
    parser.add_argument("--orthanc-http-port", type=int, default=16042)
    parser.add_argument("--skip-orthanc", action="store_true")
    parser.add_argument("--workdir", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = datetime.now(UTC)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="pacs-routing-"))).resolve()
    console.print(f"work dir {workdir}")
    workload = make_workload(workdir / "data", args.images, args.per_study)
    orthanc = None if args.skip_orthanc else run_orthanc(args, workdir, workload)
    ours = run_ours(args, workdir, workload)
    print_table(ours, orthanc, len(workload.sops))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"routing-{started:%Y%m%dT%H%M%S}.json"
    payload = {"started": started.isoformat(), "parameters": vars(args) | {"workdir": None}}
    path.write_text(json.dumps({**payload, "orthanc": orthanc, "ours": ours}, indent=2) + "\n")
    console.print(f"results written to {path.relative_to(ROOT)}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ours["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
