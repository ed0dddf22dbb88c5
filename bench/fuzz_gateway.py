"""Fuzz a real gateway's PDU decoding: bad PDUs over raw sockets, a control C-ECHO alongside.

    .venv/bin/python bench/fuzz_gateway.py --inputs 100000 --seconds 600

The gateway (ingest.dimse.server.start_gateway, network timeout 2 s) runs in its own
process, so its resident memory and threads are measured alone. Inputs come from
tests/fuzz/pdus.py (mutated A-ASSOCIATE-RQs, PDUs at the wrong time, oversized lengths,
noise), sent by --workers threads; each must get an A-ASSOCIATE-RJ, an A-ABORT or a close
within 5 s. Prints counts per outcome, latencies, the gateway's RSS and threads before and
after, and how the control association did. Exit status 1 if any input went unanswered,
was answered wrongly, or the control association failed.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import sys
import threading
import time
from collections import Counter
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tests.fuzz.gateway import send_one
from tests.fuzz.pdus import bad_pdu

ALLOWED = {"closed", "associate-ac", "associate-rj", "abort"}


def serve(ports: Any) -> None:
    logging.disable(logging.CRITICAL)  # a warning per bad input is the gateway's normal log
    from infra.settings import DicomSettings, UnknownAePolicy
    from ingest.dimse.access import AccessPolicy, NodeDirectory, guarded
    from ingest.dimse.server import start_gateway

    policy = AccessPolicy("PACS", NodeDirectory(lambda: []), UnknownAePolicy.LOCAL)
    handlers = [(evt.EVT_C_ECHO, guarded("echo", lambda event: 0x0000))]
    server = start_gateway(DicomSettings(port=0, network_timeout_seconds=2), handlers, policy)
    ports.put(server.server_address[1])
    threading.Event().wait()


def status(pid: int) -> tuple[int, int]:
    """(RSS in KiB, threads) of a process."""
    with open(f"/proc/{pid}/status") as file:
        fields = dict(line.split(":", 1) for line in file.read().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


def echo(port: int) -> tuple[bool, float]:
    started = time.monotonic()
    ae = AE(ae_title="CONTROL")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    ok = assoc.is_established and assoc.send_c_echo().Status == 0
    if assoc.is_established:
        assoc.release()
    return bool(ok), time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=600, help="stop early after this long")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)

    ports: Any = multiprocessing.get_context("spawn").Queue()
    gateway = multiprocessing.get_context("spawn").Process(target=serve, args=(ports,), daemon=True)
    gateway.start()
    port = ports.get(timeout=60)
    assert echo(port)[0], "the gateway does not answer a C-ECHO before fuzzing"
    rss_before, threads_before = status(gateway.pid or 0)

    outcomes: Counter[str] = Counter()
    kinds: Counter[tuple[str, str]] = Counter()
    worst = [0.0]
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    next_input = iter(range(args.inputs))
    stop = threading.Event()
    controls: list[tuple[bool, float]] = []

    def work(worker: int) -> None:
        rng = random.Random(args.seed * 1000 + worker)
        while time.monotonic() < deadline:
            with lock:
                if next(next_input, None) is None:
                    return
            kind, data = bad_pdu(rng)
            outcome, seconds = send_one(port, data)
            with lock:
                outcomes[outcome] += 1
                kinds[kind, outcome] += 1
                worst[0] = max(worst[0], seconds)

    def control() -> None:
        while not stop.wait(1.0):
            controls.append(echo(port))

    started = time.monotonic()
    watcher = threading.Thread(target=control)
    watcher.start()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(args.workers)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop.set()
    watcher.join()
    elapsed = time.monotonic() - started
    time.sleep(3)  # association threads end once their peer is gone
    rss_after, threads_after = status(gateway.pid or 0)
    after = echo(port)
    gateway.kill()

    total = sum(outcomes.values())
    print(
        f"inputs sent: {total} in {elapsed:.0f} s ({total / elapsed:.0f}/s, {args.workers} workers)"
    )
    for outcome, count in outcomes.most_common():
        print(f"  {outcome:14} {count}")
    print("by mutation:")
    for (kind, outcome), count in sorted(kinds.items()):
        print(f"  {kind:14} {outcome:14} {count}")
    print(f"slowest answer: {worst[0] * 1000:.0f} ms")
    print(f"gateway RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after")
    print(f"gateway threads: {threads_before} before, {threads_after} after")
    good = sum(ok for ok, _ in controls)
    slowest = max((s for _, s in controls), default=0.0)
    print(
        f"control C-ECHO during the run: {good}/{len(controls)} succeeded, "
        f"slowest {slowest * 1000:.0f} ms; after: {'ok' if after[0] else 'FAILED'}"
    )
    bad = set(outcomes) - ALLOWED
    return 0 if not bad and good == len(controls) and after[0] else 1


if __name__ == "__main__":
    sys.exit(main())
