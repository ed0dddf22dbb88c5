"""Memory of our platform: each process's RSS idle, then the gateway's with N open associations.

Starts the embedded local stack (spool landing) on its own ports and data dir, waits until it
has been idle for a while, and reads VmRSS of every process. Then a pynetdicom SCU (in this
process: the gateway's RSS is what is measured) opens N associations, each C-ECHOes and stores
one small CT image, and all stay open while the gateway's RSS is read again; the growth divided
by N is the cost of an association. Finally every association is released and RSS read once
more (memory given back, or kept by the allocator).

    .venv/bin/python bench/association_memory.py [--associations 100] [--workdir DIR]

Results are printed and written to `bench/results/memory-<timestamp>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pynetdicom import AE  # noqa: E402
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]  # noqa: E402

from bench.ingest_vs_orthanc import _start_stack, platform_settings  # noqa: E402
from infra.settings import LandingMode  # noqa: E402
from infra.stack import LocalStack  # noqa: E402
from tests.dicom_factory import ct_series  # noqa: E402

# The stack processes that are ours (the servers are SeaweedFS, Tansu and Temporal).
OURS = ("gateway", "api", "worker", "dispatcher")


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kb = int(status.split("VmRSS:")[1].split()[0])
    return kb / 1024


def snapshot(pids: dict[str, int | None]) -> dict[str, float]:
    return {name: round(rss_mb(pid), 1) for name, pid in pids.items()}


def open_associations(port: int, title: str, count: int) -> list[Any]:
    ae = AE(ae_title="MEMSCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    images = list(ct_series(count, size=64))
    opened: list[Any] = []
    for image in images:
        assoc = ae.associate("127.0.0.1", port, ae_title=title)
        if not assoc.is_established:
            raise RuntimeError(f"association {len(opened) + 1} was not established")
        echo = assoc.send_c_echo()
        stored = assoc.send_c_store(image)
        if echo.Status != 0 or stored.Status != 0:
            raise RuntimeError(f"echo 0x{echo.Status:04X} / store 0x{stored.Status:04X}")
        opened.append(assoc)
    return opened


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--associations", type=int, default=100)
    parser.add_argument("--base", type=int, default=16000, help="port base (below 32768)")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pacs-memory-"))
    settings = platform_settings(workdir / "ours", args.base, LandingMode.SPOOL, 5.0)
    # A hundred associations need room: the default limit is below that.
    settings.dicom.max_associations = max(settings.dicom.max_associations, args.associations + 5)
    stack = LocalStack(settings)
    result: dict[str, Any] = {"associations": args.associations}
    try:
        asyncio.run(_start_stack(stack))
        pids = {p.name: p.pid for p in stack.all_processes()}
        time.sleep(args.idle_seconds)
        idle = snapshot(pids)
        result["idle_mb"] = idle
        result["idle_ours_mb"] = round(sum(idle[name] for name in OURS if name in idle), 1)
        print(f"idle RSS (MB): {idle}")
        print(f"  ours ({', '.join(OURS)}): {result['idle_ours_mb']} MB")
        gateway = pids["gateway"]
        before = rss_mb(gateway)
        opened = open_associations(settings.dicom.port, settings.dicom.ae_title, args.associations)
        time.sleep(3)
        held = rss_mb(gateway)
        per = (held - before) / args.associations
        result.update(
            gateway_before_mb=round(before, 1),
            gateway_open_mb=round(held, 1),
            per_association_mb=round(per, 2),
        )
        print(
            f"gateway RSS: {before:.1f} MB idle -> {held:.1f} MB with {args.associations} "
            f"associations open ({per:.2f} MB each)"
        )
        for assoc in opened:
            assoc.release()
        time.sleep(3)
        result["gateway_after_release_mb"] = round(rss_mb(gateway), 1)
        print(f"gateway RSS after release: {result['gateway_after_release_mb']} MB")
    finally:
        stack.stop_all()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = out / f"memory-{stamp}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
