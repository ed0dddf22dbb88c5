"""Bad PDUs over raw sockets to a real gateway: each gets an A-ASSOCIATE-RJ, an A-ABORT or a
close within a timeout, the gateway's threads and memory stay bounded, and a normal C-ECHO
association works while and after it is fuzzed. bench/fuzz_gateway.py is the long run."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from infra.settings import DicomSettings, UnknownAePolicy
from ingest.dimse.access import AccessPolicy, NodeDirectory, guarded
from ingest.dimse.server import _shutdown, start_gateway
from tests.fuzz.gateway import send_one
from tests.fuzz.pdus import associate_rq, bad_pdu, item, pdu

ALLOWED = {"closed", "associate-ac", "associate-rj", "abort"}


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    policy = AccessPolicy("PACS", NodeDirectory(lambda: []), UnknownAePolicy.LOCAL)
    handlers = [(evt.EVT_C_ECHO, guarded("echo", lambda event: 0x0000))]
    # A short network timeout, so a peer that stops mid-PDU is cut off within the test.
    server = start_gateway(DicomSettings(port=0, network_timeout_seconds=2), handlers, policy)
    try:
        yield server.server_address[1]
    finally:
        _shutdown(server)


def echo(port: int) -> int:
    ae = AE(ae_title="CONTROL")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established, "the control association was not accepted"
    status = int(assoc.send_c_echo().Status)
    assoc.release()
    return status


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1])


@pytest.mark.parametrize(
    "data",
    [
        pdu(0x04, bytes(12)),  # P-DATA before any association
        pdu(0x05, bytes(4)),  # A-RELEASE-RQ before any association
        pdu(0x01, b"", length=2**32 - 1),  # an A-ASSOCIATE-RQ announcing 4 GiB
        associate_rq()[:20],  # cut inside the fixed fields
        b"\x01",  # one byte
    ],
    ids=["p-data-first", "release-first", "oversized", "truncated", "one-byte"],
)
def test_a_bad_pdu_is_answered_or_closed(port: int, data: bytes) -> None:
    outcome, seconds = send_one(port, data)
    assert outcome in ALLOWED - {"associate-ac"}
    assert seconds < 5


def uncaught_after(port: int, data: bytes, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Send `data`; the exceptions that ended gateway threads meanwhile."""
    died: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(repr(args.exc_value)))
    outcome, _ = send_one(port, data)
    time.sleep(0.3)
    assert outcome in {"abort", "closed"}
    return died


def test_an_even_presentation_context_id_is_aborted_cleanly(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pynetdicom raised ValueError decoding it and the DUL thread died with a traceback.
    request = bytearray(associate_rq())
    at = 6 + 68 + 4 + len(b"1.2.840.10008.3.1.1.1")  # header, fixed fields, application context
    assert request[at] == 0x20, "not the presentation context item"
    request[at + 4] = 2  # its ID
    assert uncaught_after(port, bytes(request), monkeypatch) == []


def test_a_context_without_abstract_syntax_is_aborted_cleanly(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pynetdicom raised TypeError negotiating it and the association thread died.
    context = item(0x20, bytes([1, 0, 0, 0]) + item(0x40, b"1.2.840.10008.1.2"))
    fixed = associate_rq()[6 : 6 + 68 + 4 + len(b"1.2.840.10008.3.1.1.1")]
    user = item(0x50, item(0x51, struct.pack(">I", 16382)))
    assert uncaught_after(port, pdu(0x01, fixed + context + user), monkeypatch) == []


def test_a_peer_that_stops_mid_pdu_is_cut_off(port: int) -> None:
    # The write side stays open: only the gateway's network timeout (2 s here) ends it;
    # it used to hold the association thread forever.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as peer:
        peer.sendall(associate_rq()[:40])
        started = time.monotonic()
        assert peer.recv(65536)[:1] in (b"", b"\x07"), "answered something other than abort"
        assert time.monotonic() - started < 8


_SEEN: Counter[str] = Counter()


@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(min_value=0, max_value=2**64 - 1))
def test_generated_bad_pdus(port: int, seed: int) -> None:
    kind, data = bad_pdu(random.Random(seed))
    outcome, seconds = send_one(port, data)
    _SEEN[kind] += 1
    assert outcome in ALLOWED, f"{kind} input {data[:64].hex()}: {outcome}"
    assert seconds < 5, f"{kind} input took {seconds:.1f} s to be answered"


def test_the_gateway_stays_bounded_and_serves_others_while_fuzzed(port: int) -> None:
    assert echo(port) == 0
    threads, rss = threading.active_count(), rss_kib()
    stop = threading.Event()
    controls: list[int] = []

    def control() -> None:
        while not stop.is_set():
            controls.append(echo(port))
            time.sleep(0.05)

    helper = threading.Thread(target=control)
    helper.start()
    rng = random.Random(16)
    try:
        outcomes = Counter(send_one(port, bad_pdu(rng)[1])[0] for _ in range(1500))
    finally:
        stop.set()
        helper.join()
    assert set(outcomes) <= ALLOWED, outcomes
    assert controls and set(controls) == {0}, "the control association failed while fuzzed"
    assert echo(port) == 0
    time.sleep(0.5)  # association threads end after their peer closed
    assert threading.active_count() <= threads + 3
    assert rss_kib() - rss < 64 * 1024, "resident memory grew by more than 64 MiB"
