"""The gateway's TLS port on a real pynetdicom server, spoken to by DCMTK (`+tls`, `+tla`)
and a pynetdicom TLS SCU: server authentication, client certificates mapped to AE titles,
`tls: true` nodes, handshakes that must fail, and C-STORE / multi-response C-FIND over TLS
on the event-driven reactor (decrypted bytes waiting in the SSL object must not stall it)."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from typer.testing import CliRunner

from apps.cli import app
from infra.settings import ClientCertificates, DicomSettings, UnknownAePolicy
from infra.tls.authority import CertsLayout, init_authority, issue_client
from infra.tls.contexts import ServerCredentials, client_context, server_context
from ingest.dimse.access import AccessPolicy, NodeDirectory, guarded
from ingest.dimse.find import FIND_SOP_CLASSES, FindHandler
from ingest.dimse.identifier_bytes import command_set_bytes
from ingest.dimse.server import FindRouter, _shutdown, start_gateway
from schemas.nodes import Node
from tests.dicom_factory import ct_dataset, write_series
from tests.unit.ingest.dimse.test_find import StubCatalog, _match

FIND = StudyRootQueryRetrieveInformationModelFind
NODES = [
    # Must come over TLS with its own certificate.
    Node(name="ws-1", ae_title="WS1", host="127.0.0.1", port=104, tls=True),
    Node(name="ct-1", ae_title="CT1", host="127.0.0.1", port=104),
]
MATCHES = 300


@dataclass
class Pki:
    layout: CertsLayout
    ws1: tuple[Path, Path]  # key, cert
    ct1: tuple[Path, Path]
    stranger: tuple[Path, Path]  # signed by another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    layout = CertsLayout(tmp_path_factory.mktemp("certs"))
    init_authority(layout, "PACS", [])
    other = CertsLayout(tmp_path_factory.mktemp("other-ca"))
    init_authority(other, "ELSEWHERE", [])

    def pair(where: CertsLayout, title: str) -> tuple[Path, Path]:
        issued = issue_client(where, title)
        return issued.key, issued.cert

    return Pki(layout, pair(layout, "WS1"), pair(layout, "CT1"), pair(other, "WS1"))


class Received:
    def __init__(self) -> None:
        self.sop_uids: list[str] = []

    def __call__(self, event: Any) -> int:
        self.sop_uids.append(str(event.dataset.SOPInstanceUID))
        return 0x0000


@dataclass
class TlsGateway:
    port: int
    plain_port: int
    received: Received


def _start(pki: Pki, client_certificates: ClientCertificates) -> Iterator[TlsGateway]:
    catalog = StubCatalog()
    catalog.matches = [_match(n) for n in range(MATCHES)]
    router = FindRouter()
    for sop_class in FIND_SOP_CLASSES:
        router.add(str(sop_class), FindHandler(catalog, 100_000))  # type: ignore[arg-type]
    received = Received()
    handlers = [
        (evt.EVT_C_ECHO, guarded("echo", lambda event: 0x0000)),
        (evt.EVT_C_STORE, guarded("store", received)),
        (evt.EVT_C_FIND, router),
    ]
    policy = AccessPolicy("PACS", NodeDirectory(lambda: NODES), UnknownAePolicy.LOCAL)
    credentials = ServerCredentials(
        pki.layout.server_cert, pki.layout.server_key, pki.layout.ca_cert
    )
    context = server_context(credentials, client_certificates)
    settings = DicomSettings(port=0, tls_port=0)
    tls = start_gateway(settings, handlers, policy, router, context)
    plain = start_gateway(settings, handlers, policy, router)
    try:
        yield TlsGateway(tls.server_address[1], plain.server_address[1], received)
    finally:
        _shutdown(tls)
        _shutdown(plain)


@pytest.fixture(scope="module")
def gateway(pki: Pki) -> Iterator[TlsGateway]:
    yield from _start(pki, ClientCertificates.OPTIONAL)


@pytest.fixture(scope="module")
def strict_gateway(pki: Pki) -> Iterator[TlsGateway]:
    yield from _start(pki, ClientCertificates.REQUIRED)


@pytest.fixture(scope="module", autouse=True)
def dcmtk() -> None:
    if shutil.which("echoscu") is None:
        pytest.fail("DCMTK is not installed: run `make debian-tools`")


def echoscu(port: int, calling: str, *tls: str) -> subprocess.CompletedProcess[str]:
    argv = ["echoscu", "-aet", calling, "-aec", "PACS", *tls, "127.0.0.1", str(port)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def mutual(pki: Pki, pair: tuple[Path, Path]) -> list[str]:
    return ["+tls", str(pair[0]), str(pair[1]), "+cf", str(pki.layout.ca_cert)]


def test_dcmtk_echo_with_a_client_certificate(pki: Pki, gateway: TlsGateway) -> None:
    result = echoscu(gateway.port, "WS1", *mutual(pki, pki.ws1))
    assert result.returncode == 0, result.stderr


def test_dcmtk_storescu_sends_several_images_over_tls(
    pki: Pki, gateway: TlsGateway, tmp_path: Path
) -> None:
    files = write_series(
        tmp_path, (ct_dataset("1.2.826.0.1.9.1", "1.2.826.0.1.9.1.1", n) for n in range(1, 11))
    )
    started = time.monotonic()
    argv = ["storescu", "-aet", "CT1", "-aec", "PACS", *mutual(pki, pki.ct1)]
    result = subprocess.run(
        [*argv, "127.0.0.1", str(gateway.port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    sent = {str(dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files}
    assert sent <= set(gateway.received.sop_uids)
    # A reactor waiting on select() while TLS holds the next PDU would add a network
    # timeout (or IDLE_WAKE per message); ten 512x512 images take well under a second here.
    assert took < 10, f"storescu +tls of 10 images took {took:.1f}s"


def test_dcmtk_anonymous_tls_for_an_unregistered_local_ae(pki: Pki, gateway: TlsGateway) -> None:
    # Server authentication only (+tla): the unknown-AE policy applies as on the plain port.
    result = echoscu(gateway.port, "STRANGER", "+tla", "+cf", str(pki.layout.ca_cert))
    assert result.returncode == 0, result.stderr


def test_a_client_that_does_not_trust_our_ca_fails_the_handshake(
    pki: Pki, gateway: TlsGateway
) -> None:
    # DCMTK verifies the server by default (+rv); without our CA it cannot.
    result = echoscu(gateway.port, "WS1", "+tls", str(pki.ws1[0]), str(pki.ws1[1]))
    assert result.returncode != 0
    assert "TLS" in result.stderr or "certificate" in result.stderr.lower(), result.stderr


def test_a_certificate_from_another_ca_fails_the_handshake(pki: Pki, gateway: TlsGateway) -> None:
    result = echoscu(gateway.port, "WS1", *mutual(pki, pki.stranger))
    assert result.returncode != 0
    assert "Association Rejected" not in result.stderr  # never got as far as DICOM


def test_a_certificate_for_another_ae_is_rejected(pki: Pki, gateway: TlsGateway) -> None:
    # CT1's certificate, calling as WS1 (which is registered, tls: true).
    result = echoscu(gateway.port, "WS1", *mutual(pki, pki.ct1))
    assert result.returncode != 0
    assert "Calling AE Title Not Recognized" in result.stderr, result.stderr
    # ... and as an unregistered AE, which the local policy would otherwise let in.
    result = echoscu(gateway.port, "STRANGER", *mutual(pki, pki.ct1))
    assert "Calling AE Title Not Recognized" in result.stderr, result.stderr


def test_a_tls_node_is_refused_without_its_certificate(pki: Pki, gateway: TlsGateway) -> None:
    anonymous = echoscu(gateway.port, "WS1", "+tla", "+cf", str(pki.layout.ca_cert))
    assert "Calling AE Title Not Recognized" in anonymous.stderr, anonymous.stderr
    plain = echoscu(gateway.plain_port, "WS1")
    assert "Calling AE Title Not Recognized" in plain.stderr, plain.stderr
    # A node without `tls` keeps using the plain port.
    assert echoscu(gateway.plain_port, "CT1").returncode == 0


def test_required_client_certificates(pki: Pki, strict_gateway: TlsGateway) -> None:
    anonymous = echoscu(strict_gateway.port, "STRANGER", "+tla", "+cf", str(pki.layout.ca_cert))
    assert anonymous.returncode != 0
    assert "Association Rejected" not in anonymous.stderr
    assert echoscu(strict_gateway.port, "CT1", *mutual(pki, pki.ct1)).returncode == 0


def _tls_scu(pki: Pki, pair: tuple[Path, Path]) -> tuple[ssl.SSLContext, str]:
    key, cert = pair
    return client_context(pki.layout.ca_cert, cert, key), "localhost"


def test_pynetdicom_tls_scu_echoes_stores_and_finds(pki: Pki, gateway: TlsGateway) -> None:
    ae = AE(ae_title="WS1")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(FIND)
    assoc = ae.associate(
        "127.0.0.1", gateway.port, ae_title="PACS", tls_args=_tls_scu(pki, pki.ws1)
    )
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0
        image = ct_dataset("1.2.826.0.1.9.2", "1.2.826.0.1.9.2.1", 1)
        assert assoc.send_c_store(image).Status == 0
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        query.PatientName = ""
        for _ in range(3):
            started = time.monotonic()
            responses = list(assoc.send_c_find(query, FIND))
            took = time.monotonic() - started
            statuses = [status.Status for status, _ in responses]
            assert statuses == [0xFF00] * MATCHES + [0x0000]
            # Hundreds of small responses arrive in few TLS records: the DUL must read what
            # the SSL object already holds instead of waiting on select() for each.
            assert took < 5, f"C-FIND of {MATCHES} matches over TLS took {took:.1f}s"
    finally:
        assoc.release()
    assert str(image.SOPInstanceUID) in gateway.received.sop_uids


def test_an_oversized_pdu_over_tls_is_aborted_before_its_body(
    pki: Pki, gateway: TlsGateway
) -> None:
    context = client_context(pki.layout.ca_cert)
    raw = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as peer:
        # An A-ASSOCIATE-RQ claiming 1 GiB: refused from its header alone.
        peer.sendall(struct.pack(">BBI", 0x01, 0, 1 << 30))
        answer = peer.recv(10)
    assert answer[:1] == b"\x07", f"{answer!r}: no A-ABORT"


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def _associate_rq(calling: str) -> bytes:
    contexts = _item(0x20, bytes([1, 0, 0, 0]) + _item(0x30, b"1.2.840.10008.1.1")
                     + _item(0x40, b"1.2.840.10008.1.2"))  # fmt: skip
    user = _item(0x50, _item(0x51, struct.pack(">I", 16382)))
    body = (
        struct.pack(">HH", 1, 0)
        + b"PACS".ljust(16)
        + calling.encode().ljust(16)
        + bytes(32)
        + _item(0x10, b"1.2.840.10008.3.1.1.1")
        + contexts
        + user
    )
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def _echo_rq(message_id: int) -> bytes:
    command = command_set_bytes(
        [
            (0x00000002, "UI", "1.2.840.10008.1.1"),
            (0x00000100, "US", 0x0030),
            (0x00000110, "US", message_id),
            (0x00000800, "US", 0x0101),
        ]
    )
    pdv = struct.pack(">IBB", len(command) + 2, 1, 0x03) + command
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


class PduReader:
    """Whole PDUs off a socket, keeping what one recv() brought beyond the first."""

    def __init__(self, peer: ssl.SSLSocket) -> None:
        self.peer = peer
        self.data = b""

    def read(self) -> int:
        """The next PDU's type."""
        while len(self.data) < 6 or len(self.data) < 6 + struct.unpack(">I", self.data[2:6])[0]:
            chunk = self.peer.recv(65536)
            assert chunk, f"connection closed after {self.data!r}"
            self.data += chunk
        kind, length = self.data[0], struct.unpack(">I", self.data[2:6])[0]
        self.data = self.data[6 + length :]
        return kind


def test_pdus_sharing_one_tls_record_are_all_served(pki: Pki, gateway: TlsGateway) -> None:
    """Two C-ECHO requests written at once travel in one TLS record: after the first PDU the
    second is already decrypted inside the SSL object, and select() on the socket reports
    nothing more. A reactor that only waited on select() would leave it there until the
    network timeout."""
    context = client_context(pki.layout.ca_cert)
    raw = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as peer:
        reader = PduReader(peer)
        peer.sendall(_associate_rq("STRANGER"))
        assert reader.read() == 0x02, "no A-ASSOCIATE-AC"
        started = time.monotonic()
        peer.sendall(_echo_rq(1) + _echo_rq(2))  # one write, one TLS record
        answered = [reader.read() for _ in range(2)]
        took = time.monotonic() - started
    assert answered == [0x04, 0x04]
    assert took < 1, f"the second C-ECHO waited {took:.1f}s"


def test_pacs_scu_commands_speak_tls(pki: Pki, gateway: TlsGateway, tmp_path: Path) -> None:
    key, cert = pki.ct1
    tls = ["--tls-ca", str(pki.layout.ca_cert), "--tls-cert", str(cert), "--tls-key", str(key)]
    where = ["--aet", "PACS", "--host", "127.0.0.1", "--port", str(gateway.port)]
    runner = CliRunner()
    echoed = runner.invoke(app, ["echo", *where, "--calling-aet", "CT1", *tls])
    assert echoed.exit_code == 0, echoed.output
    files = write_series(
        tmp_path, (ct_dataset("1.2.826.0.1.9.3", "1.2.826.0.1.9.3.1", n) for n in (1, 2))
    )
    stored = runner.invoke(app, ["store", *where, "--calling-aet", "CT1", *tls, *map(str, files)])
    assert stored.exit_code == 0, stored.output
    sent = {str(dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files}
    assert sent <= set(gateway.received.sop_uids)
    # Trusting only the system store, our local CA's certificate is refused: no association.
    untrusting = runner.invoke(app, ["echo", *where, "--calling-aet", "CT1", "--tls"])
    assert untrusting.exit_code == 2
    assert "no TLS connection" in untrusting.output
