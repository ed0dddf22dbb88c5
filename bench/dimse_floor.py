"""What the DIMSE layer costs a query, before any catalog work, against Orthanc (DCMTK in C++)
with the same pynetdicom client.

1. STOCK: a bare pynetdicom SCP (its own process, TCP_NODELAY, identifier logging off)
   answering C-ECHO and a C-FIND with two fixed pending datasets: pynetdicom's own floor.
2. GATEWAY: our gateway's DIMSE server (`ingest.dimse.server.start_gateway`: every storage context,
   event-driven reactors, the direct C-FIND responder) whose FindHandler asks a stub catalog
   holding the same two matches: everything but the catalog round trip.
3. ORTHANC: Debian's Orthanc holding one patient's two studies answers the same C-FIND.
4. Per target: 300 C-ECHOs and 300 C-FINDs on one association; 100 associations of
   associate + C-ECHO + release (what a findscu or a modality pays per connection); and the
   CPU an idle, established association costs each side (`/proc` counters over 5 s).

    .venv/bin/python bench/dimse_floor.py [--skip-orthanc]

Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pydicom.dataset import Dataset  # noqa: E402
from pynetdicom import AE, _config, evt  # noqa: E402
from pynetdicom.association import Association  # noqa: E402
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # noqa: E402
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from bench.query_vs_orthanc import cpu_seconds, percentile  # noqa: E402
from infra.dimse.nodelay import set_nodelay  # noqa: E402
from infra.settings import DicomSettings, UnknownAePolicy  # noqa: E402
from ingest.dimse.access import AccessPolicy, NodeDirectory  # noqa: E402
from ingest.dimse.find import FIND_SOP_CLASSES, FindHandler  # noqa: E402
from ingest.dimse.server import FindRouter, start_gateway  # noqa: E402
from tests.dicom_factory import ct_series, write_series  # noqa: E402
from tests.orthanc import Orthanc  # noqa: E402

FIND = StudyRootQueryRetrieveInformationModelFind
LOOPBACK = "127.0.0.1"
PATIENT = "FLOOR-1"


def _answer(event: Any) -> Iterator[tuple[int, Dataset]]:
    for number in (1, 2):
        found = Dataset()
        found.QueryRetrieveLevel = "STUDY"
        found.PatientID = PATIENT
        found.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1.{number}"
        found.PatientName = "FLOOR^TEST"
        yield 0xFF00, found


class TwoStudies:
    """The catalog client's find(), answering every query with the same two studies."""

    def find(
        self, level: str, filters: dict[str, str], keys: list[str], limit: int, offset: int = 0
    ) -> list[dict[str, Any]]:
        return [
            {
                "00100020": {"vr": "LO", "Value": [PATIENT]},
                "0020000D": {"vr": "UI", "Value": [f"1.2.826.0.1.3680043.10.1.{number}"]},
                "00100010": {"vr": "PN", "Value": [{"Alphabetic": "FLOOR^TEST"}]},
            }
            for number in (1, 2)
        ]


def serve(port: int, kind: str) -> None:
    """The STOCK or GATEWAY SCP (run in a process of its own by `main`)."""
    if kind == "gateway":
        router = FindRouter()
        for sop_class in FIND_SOP_CLASSES:
            handler = FindHandler(TwoStudies(), DicomSettings().find_max_matches)  # type: ignore[arg-type]
            router.add(str(sop_class), handler)
        settings = DicomSettings(host=LOOPBACK, port=port, ae_title="GATEWAY")
        # Loopback clients, unregistered: the gateway's default policy lets them in.
        policy = AccessPolicy("GATEWAY", NodeDirectory(list), UnknownAePolicy.LOCAL)
        start_gateway(settings, [(evt.EVT_C_FIND, router)], policy, router)
        threading.Event().wait()
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = AE(ae_title="STOCK")
    ae.add_supported_context(Verification)
    ae.add_supported_context(FIND)
    handlers: list[Any] = [(evt.EVT_C_FIND, _answer), (evt.EVT_CONN_OPEN, set_nodelay)]
    ae.start_server((LOOPBACK, port), block=True, evt_handlers=handlers)


def associate(port: int, aet: str) -> Association:
    ae = AE(ae_title="FLOORSCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(FIND)
    ae.add_requested_context(CTImageStorage)
    nodelay: list[Any] = [(evt.EVT_CONN_OPEN, set_nodelay)]
    assoc = ae.associate(LOOPBACK, port, ae_title=aet, evt_handlers=nodelay)
    if not assoc.is_established:
        raise RuntimeError(f"association to {aet} refused")
    return assoc


def p50_p95(samples: list[float]) -> str:
    return f"{percentile(samples, 50) * 1000:.2f} / {percentile(samples, 95) * 1000:.2f} ms"


def time_queries(port: int, aet: str, rounds: int) -> None:
    assoc = associate(port, aet)
    try:
        echo, find = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            assoc.send_c_echo()
            echo.append(time.perf_counter() - start)
        matches = 0
        for _ in range(rounds):
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.PatientID = PATIENT
            query.StudyInstanceUID = ""
            query.PatientName = ""
            start = time.perf_counter()
            responses = assoc.send_c_find(query, FIND)
            matches = sum(1 for status, _ in responses if status.Status == 0xFF00)
            find.append(time.perf_counter() - start)
        print(f"{aet:8} C-ECHO {p50_p95(echo)}   C-FIND ({matches} matches) {p50_p95(find)}")
    finally:
        assoc.release()


def time_associations(port: int, aet: str, rounds: int) -> None:
    setup = []
    for _ in range(rounds):
        start = time.perf_counter()
        assoc = associate(port, aet)
        assoc.send_c_echo()
        assoc.release()
        setup.append(time.perf_counter() - start)
    print(f"{aet:8} associate + C-ECHO + release {p50_p95(setup)}")


def idle_cost(port: int, aet: str, server_pid: int) -> None:
    assoc = associate(port, aet)
    try:
        time.sleep(1)
        server, client = cpu_seconds([server_pid]), cpu_seconds([os.getpid()])
        time.sleep(5)
        server = (cpu_seconds([server_pid]) - server) / 5
        client = (cpu_seconds([os.getpid()]) - client) / 5
        print(f"{aet:8} idle association: {server:.1%} of a core (SCP), {client:.1%} (client)")
    finally:
        assoc.release()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=17104)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--skip-orthanc", action="store_true")
    parser.add_argument("--serve", choices=["stock", "gateway"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.serve)
        return 0
    for kind in ("stock", "gateway"):
        command = [sys.executable, __file__, "--serve", kind, "--port", str(args.port)]
        scp = subprocess.Popen(command)
        try:
            time.sleep(3)
            aet = kind.upper()
            time_queries(args.port, aet, args.rounds)
            time_associations(args.port, aet, args.rounds // 3)
            idle_cost(args.port, aet, scp.pid)
        finally:
            scp.terminate()
            scp.wait()
    if args.skip_orthanc:
        return 0
    with tempfile.TemporaryDirectory(prefix="dimse-floor-") as work:
        orthanc = Orthanc(Path(work), args.port + 1, args.port + 2)
        orthanc.start()
        try:
            # Two studies of the patient: two matches, as the bare SCP answers.
            files = Path(work) / "studies"
            write_series(files, ct_series(2, size=8, patient_id=PATIENT))
            write_series(files / "second", ct_series(2, size=8, patient_id=PATIENT))
            subprocess.run(
                ["storescu", "-aec", orthanc.aet, "+sd", "+r", LOOPBACK,
                 str(orthanc.dicom_port), str(files)],
                check=True,
            )  # fmt: skip
            time.sleep(1)
            time_queries(orthanc.dicom_port, orthanc.aet, args.rounds)
            time_associations(orthanc.dicom_port, orthanc.aet, args.rounds // 3)
            assert orthanc.proc is not None
            idle_cost(orthanc.dicom_port, orthanc.aet, orthanc.proc.pid)
        finally:
            orthanc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
