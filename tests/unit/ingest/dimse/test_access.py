"""The DIMSE door on a real pynetdicom gateway: which associations are accepted (and the
A-ASSOCIATE-RJ reason otherwise), and which services each may use."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from infra.dimse.nodelay import set_nodelay
from infra.settings import DicomSettings, UnknownAePolicy
from ingest.dimse.access import NOT_AUTHORISED, AccessPolicy, Grant, NodeDirectory, guarded
from ingest.dimse.server import FindRouter, _shutdown, start_gateway
from schemas.nodes import Node
from tests.dicom_factory import ct_dataset

NODES = [
    Node(
        name="ct-1",
        ae_title="CT1",
        host="127.0.0.1",
        port=104,
        services=["echo", "store"],
        addresses=["127.0.0.0/8"],
    ),
    Node(name="far", ae_title="WS9", host="10.1.2.3", port=104, addresses=["10.1.2.0/24"]),
    Node(name="ws-1", ae_title="WS1", host="127.0.0.1", port=104, move_destinations=["WS1"]),
]


def find_matches(event: Any) -> Iterator[tuple[int, Dataset | None]]:
    match = Dataset()
    match.QueryRetrieveLevel = "STUDY"
    match.StudyInstanceUID = "1.2.3"
    yield 0xFF00, match


@pytest.fixture(params=[UnknownAePolicy.DENY, UnknownAePolicy.LOCAL])
def gateway(request: pytest.FixtureRequest) -> Iterator[tuple[int, UnknownAePolicy]]:
    policy = AccessPolicy("PACS", NodeDirectory(lambda: NODES), request.param)
    router = FindRouter()
    router.add(str(StudyRootQueryRetrieveInformationModelFind), find_matches)
    handlers = [
        (evt.EVT_C_ECHO, guarded("echo", lambda event: 0x0000)),
        (evt.EVT_C_STORE, guarded("store", lambda event: 0x0000)),
        (evt.EVT_C_FIND, router),
    ]
    server = start_gateway(DicomSettings(port=0), handlers, policy, router)
    try:
        yield server.server_address[1], request.param
    finally:
        _shutdown(server)


def associate(port: int, calling: str, called: str = "PACS") -> Any:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    return ae.associate(
        "127.0.0.1", port, ae_title=called, evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)]
    )


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def rejection(port: int, calling: str, called: str = "PACS") -> tuple[int, int, int]:
    """(result, source, reason) of the A-ASSOCIATE-RJ answering a Verification request.

    Spoken over a plain socket (PS3.8 9.3.2, 9.3.4): pynetdicom's requestor can report a
    reject as an abort when the acceptor closes the connection before its association
    thread looks (seen under a loaded CI), which is a race in the client, not the answer."""
    contexts = _item(0x20, bytes([1, 0, 0, 0]) + _item(0x30, b"1.2.840.10008.1.1")
                     + _item(0x40, b"1.2.840.10008.1.2"))  # fmt: skip
    user = _item(0x50, _item(0x51, struct.pack(">I", 16382)))
    body = (
        struct.pack(">HH", 1, 0)
        + called.ljust(16).encode()
        + calling.ljust(16).encode()
        + bytes(32)
        + _item(0x10, b"1.2.840.10008.3.1.1.1")
        + contexts
        + user
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as peer:
        peer.sendall(struct.pack(">BBI", 0x01, 0, len(body)) + body)
        answer = b""
        while len(answer) < 10:
            chunk = peer.recv(10 - len(answer))
            assert chunk, f"connection closed after {answer!r}: no A-ASSOCIATE-RJ"
            answer += chunk
    assert answer[0] == 0x03, f"PDU type 0x{answer[0]:02X}, not A-ASSOCIATE-RJ"
    return answer[7], answer[8], answer[9]


def statuses(assoc: Any) -> dict[str, int]:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    found = [
        s.Status for s, _ in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
    ]
    stored = assoc.send_c_store(ct_dataset("1.2.3", "1.2.3.4", 1, size=8))
    return {"echo": assoc.send_c_echo().Status, "store": stored.Status, "find": found[-1]}


def test_called_ae_must_be_ours(gateway: tuple[int, UnknownAePolicy]) -> None:
    port, _ = gateway
    assert rejection(port, "CT1", called="ANY-SCP") == (0x01, 0x01, 0x07)


def test_an_unregistered_ae_depends_on_the_policy(gateway: tuple[int, UnknownAePolicy]) -> None:
    port, policy = gateway
    if policy == UnknownAePolicy.DENY:
        assert rejection(port, "STRANGER") == (0x01, 0x01, 0x03)  # calling AE not recognised
        return
    assoc = associate(port, "STRANGER")
    # `local`: every service, from a loopback address (as the README's first storescu).
    assert assoc.is_established
    assert statuses(assoc) == {"echo": 0, "store": 0, "find": 0}
    assoc.release()


def test_a_registered_node_uses_only_its_services(gateway: tuple[int, UnknownAePolicy]) -> None:
    port, _ = gateway
    assoc = associate(port, "CT1")
    assert assoc.is_established
    assert statuses(assoc) == {"echo": 0, "store": 0, "find": NOT_AUTHORISED}
    assoc.release()
    viewer = associate(port, "WS1")
    assert statuses(viewer) == {"echo": 0, "store": 0, "find": 0}
    viewer.release()


def test_a_node_connecting_from_elsewhere_is_refused(gateway: tuple[int, UnknownAePolicy]) -> None:
    port, _ = gateway
    assert rejection(port, "WS9") == (0x01, 0x01, 0x03)


def test_move_destinations() -> None:
    node = NODES[2]
    assert Grant("WS1", node, frozenset({"move"})).may_move_to("WS1")
    assert not Grant("WS1", node, frozenset({"move"})).may_move_to("ELSEWHERE")
    anyone = node.model_copy(update={"move_destinations": ["*"]})
    assert Grant("WS1", anyone, frozenset({"move"})).may_move_to("ELSEWHERE")
