"""The gateway's C-FIND on event-driven associations (direct responder) against the same
gateway on pynetdicom's own reactor and C-FIND service class: a pynetdicom SCU must get the
same responses from both, over loopback, for every transfer syntax and PDU size.

The catalog is a stub here; tests/integration/test_cfind.py runs the same path against the
real catalog with DCMTK findscu and pynetdicom."""

from __future__ import annotations

import os
import select
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)
from pynetdicom.transport import ThreadedAssociationServer

from infra.settings import DicomSettings
from ingest.dimse.find import FIND_SOP_CLASSES, FindHandler
from ingest.dimse.reactor import EventDrivenAssociation, EventDrivenDUL
from ingest.dimse.server import FindRouter, _shutdown, start_gateway
from tests.unit.ingest.dimse.access import LOOPBACK_ONLY

FIND = StudyRootQueryRetrieveInformationModelFind


class StubCatalog:
    def __init__(self) -> None:
        self.matches: list[dict[str, Any]] = []

    def find(
        self,
        level: str,
        filters: dict[str, str],
        keys: list[str],
        limit: int,
        offset: int = 0,
        scope: object = None,
    ) -> list[dict[str, Any]]:
        return self.matches[offset : offset + limit]


class CountingRouter(FindRouter):
    calls = 0

    def __call__(self, event: Any) -> Any:
        self.calls += 1
        return super().__call__(event)


def _match(number: int, comments: str = "") -> dict[str, Any]:
    return {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": f"DOE^{number}"}]},
        "00100020": {"vr": "LO", "Value": ["P-1"]},
        "0020000D": {"vr": "UI", "Value": [f"1.2.826.0.1.3680043.10.{number}"]},
        "00080061": {"vr": "CS", "Value": ["CT", "SR"]},
        "00201208": {"vr": "IS", "Value": [number]},
        "00104000": {"vr": "LT", "Value": [comments]} if comments else {"vr": "LT"},
    }


class Gateway:
    def __init__(
        self,
        event_driven: bool,
        network_timeout: float = 30,
        max_matches: int = DicomSettings().find_max_matches,
    ) -> None:
        self.catalog = StubCatalog()
        self.router = CountingRouter()
        for sop_class in FIND_SOP_CLASSES:
            handler = FindHandler(self.catalog, max_matches)  # type: ignore[arg-type]
            self.router.add(str(sop_class), handler)
        settings = DicomSettings(
            port=0, event_driven_reactor=event_driven, network_timeout_seconds=network_timeout
        )
        handlers = [(evt.EVT_C_FIND, self.router)]
        self.server: ThreadedAssociationServer = start_gateway(
            settings, handlers, LOOPBACK_ONLY, self.router
        )
        self.port = self.server.server_address[1]

    def close(self) -> None:
        _shutdown(self.server)


@pytest.fixture
def gateways() -> Iterator[tuple[Gateway, Gateway]]:
    direct, stock = Gateway(event_driven=True), Gateway(event_driven=False)
    try:
        yield direct, stock
    finally:
        direct.close()
        stock.close()


def _query() -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = "P-1"
    for keyword in ("PatientName", "StudyInstanceUID", "ModalitiesInStudy", "PatientComments"):
        setattr(query, keyword, "")
    query.NumberOfStudyRelatedInstances = None
    query.StudyDate = ""
    return query


def _find(
    port: int, query: Dataset, syntax: str, max_pdu: int = 16382, cancel_after: int = 0
) -> list[tuple[int, str, Dataset | None]]:
    ae = AE(ae_title="FINDSCU")
    ae.maximum_pdu_size = max_pdu
    ae.add_requested_context(FIND, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    responses = []
    try:
        for status, found in assoc.send_c_find(query, FIND, msg_id=9):
            responses.append((int(status.Status), str(status.get("ErrorComment", "")), found))
            if cancel_after and len(responses) == cancel_after:
                assoc.send_c_cancel(9, query_model=FIND)
    finally:
        assoc.release()
    assert assoc.is_released
    return responses


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
@pytest.mark.parametrize("max_pdu", [16382, 0, 1024])
def test_direct_find_answers_what_pynetdicom_answers(
    gateways: tuple[Gateway, Gateway], syntax: str, max_pdu: int
) -> None:
    direct, stock = gateways
    # Long comments: at a 1 KiB PDU the identifier is split over several PDVs.
    matches = [_match(n, comments="x" * 3001 if n == 2 else "") for n in range(1, 4)]
    for gateway in gateways:
        gateway.catalog.matches = matches
    ours = _find(direct.port, _query(), syntax, max_pdu)
    theirs = _find(stock.port, _query(), syntax, max_pdu)
    assert [status for status, _, _ in ours] == [0xFF00, 0xFF00, 0xFF00, 0x0000]
    assert ours == theirs
    assert ours[1][2] is not None and len(ours[1][2].PatientComments) == 3001
    # The direct server answered itself; the stock one went through pynetdicom's handler.
    assert (direct.router.calls, stock.router.calls) == (0, 1)


def test_refusal_cancel_and_no_match_match_pynetdicom(gateways: tuple[Gateway, Gateway]) -> None:
    direct, stock = gateways
    wrong = _query()
    wrong.QueryRetrieveLevel = "PATIENT"  # not a Study Root level: 0xA900 with a reason
    assert _find(direct.port, wrong, ImplicitVRLittleEndian) == _find(
        stock.port, wrong, ImplicitVRLittleEndian
    )
    assert _find(direct.port, wrong, ImplicitVRLittleEndian)[0][:2] == (
        0xA900,
        "QueryRetrieveLevel 'PATIENT' is not one of STUDY, SERIES, IMAGE",
    )

    assert _find(direct.port, _query(), ExplicitVRLittleEndian) == [(0x0000, "", None)]

    # Text beyond ASCII comes back in UTF-8 and says so (pydicom writes that one).
    unicode = _match(1)
    unicode["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": "MÜLLER^JÖRG"}]}
    direct.catalog.matches = stock.catalog.matches = [unicode]
    ((_, _, found), _) = _find(direct.port, _query(), ImplicitVRLittleEndian)
    assert found is not None
    assert (found.SpecificCharacterSet, found.PatientName) == ("ISO_IR 192", "MÜLLER^JÖRG")
    assert _find(stock.port, _query(), ImplicitVRLittleEndian)[0][2] == found

    direct.catalog.matches = [_match(n) for n in range(3000)]
    cancelled = _find(direct.port, _query(), ExplicitVRLittleEndian, cancel_after=1)
    assert cancelled[-1][0] == 0xFE00
    assert len(cancelled) < 3001


@pytest.mark.parametrize("event_driven", [True, False])
def test_a_capped_find_says_so_instead_of_succeeding(event_driven: bool) -> None:
    gateway = Gateway(event_driven=event_driven, max_matches=2_500)
    try:
        # More than a catalog page (2,000) but under the cap: every match, then success.
        gateway.catalog.matches = [_match(n) for n in range(2_500)]
        answered = _find(gateway.port, _query(), ExplicitVRLittleEndian)
        assert [s for s, _, _ in answered] == [0xFF00] * 2_500 + [0x0000]
        numbers = [int(found.NumberOfStudyRelatedInstances) for _, _, found in answered if found]
        assert numbers == list(range(2_500))  # each match once, in the catalog's order
        # One over the cap: the first 2,500 and a refusal that says why, never a success.
        gateway.catalog.matches.append(_match(2_500))
        capped = _find(gateway.port, _query(), ExplicitVRLittleEndian)
        assert len(capped) == 2_501
        reason = "more than 2500 matches: capped at 2500; narrow the query"
        assert capped[-1][:2] == (0xA700, reason)
    finally:
        gateway.close()


def test_event_driven_association_times_out_and_releases() -> None:
    gateway = Gateway(event_driven=True, network_timeout=1)
    try:
        ae = AE(ae_title="IDLE")
        ae.add_requested_context(FIND)
        assoc = ae.associate("127.0.0.1", gateway.port, ae_title="PACS")
        assert assoc.is_established
        (accepted,) = gateway.server.active_associations
        assert isinstance(accepted, EventDrivenAssociation)
        # Idle past the network timeout: the SCP aborts, as pynetdicom's own loop would.
        deadline = time.monotonic() + 5
        while assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.05)
        assert assoc.is_aborted

        again = ae.associate("127.0.0.1", gateway.port, ae_title="PACS")
        assert again.is_established
        again.release()
        assert again.is_released
        deadline = time.monotonic() + 2
        while gateway.server.active_associations and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gateway.server.active_associations == []
    finally:
        gateway.close()


def test_a_wake_after_the_dul_ended_writes_nowhere() -> None:
    """The wake-up pipe's fd numbers are reused once closed (by a socket, a file); a late
    wake() must not write into whatever now holds them."""
    dul = EventDrivenDUL(Association(AE(), "acceptor"))
    dul.close_wake_pipe()
    read, write = os.pipe()  # most likely the numbers just freed
    try:
        os.set_blocking(read, False)
        dul.wake()
        with pytest.raises(BlockingIOError):
            os.read(read, 1)
    finally:
        os.close(read)
        os.close(write)


def test_a_wake_during_the_drain_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message queued while the DUL drains its wake-up pipe must still wake it next time
    (a lost wake made every later response of a long C-FIND wait 50 ms)."""
    dul = EventDrivenDUL(Association(AE(), "acceptor"))
    try:
        dul.wake()
        real_read = os.read

        def read_with_a_wake_racing(fd: int, n: int) -> bytes:
            dul.wake()  # another thread queues a message just as the drain begins
            return real_read(fd, n)

        monkeypatch.setattr("ingest.dimse.reactor.os.read", read_with_a_wake_racing)
        dul._drain_wake()
        monkeypatch.undo()
        dul.wake()  # the next message
        readable, _, _ = select.select([dul._wake_read], [], [], 0)
        assert readable, "the wake-up pipe is empty: the DUL would sleep through the message"
    finally:
        dul.close_wake_pipe()


def test_a_pdu_longer_than_we_accept_aborts_before_its_body_is_read() -> None:
    """A peer claiming a 1 GiB P-DATA PDU (we accept 64 KiB) is aborted at once, before the
    gateway reads, let alone holds, what it claims."""
    gateway = Gateway(event_driven=True)
    gateway.server.ae.maximum_pdu_size = 64 * 1024
    try:
        ae = AE(ae_title="BIGPDU")
        ae.add_requested_context(FIND)
        assoc = ae.associate("127.0.0.1", gateway.port, ae_title="PACS")
        assert assoc.is_established
        raw = assoc.dul.socket.socket
        raw.sendall(struct.pack(">BBL", 0x04, 0, 1 << 30) + b"\0" * 4096)
        deadline = time.monotonic() + 5
        while assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.02)
        assert assoc.is_aborted, "the gateway kept reading a PDU longer than it accepts"

        # Within the bound, a query whose identifier is a 40 KB PDU is served as before.
        gateway.catalog.matches = [_match(1)]
        query = _query()
        query.PatientComments = "x" * 40_000
        answered = _find(gateway.port, query, ExplicitVRLittleEndian, max_pdu=0)
        assert [status for status, _, _ in answered] == [0xFF00, 0x0000]
    finally:
        gateway.close()
