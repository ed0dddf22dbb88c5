"""The DIMSE door on a real pynetdicom gateway: which associations are accepted (and the
A-ASSOCIATE-RJ reason otherwise), and which services each may use."""

from __future__ import annotations

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


def rejection(assoc: Any) -> tuple[int, int, int]:
    assert assoc.is_rejected
    answer = assoc.acceptor.primitive
    return answer.result, answer.result_source, answer.diagnostic


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
    assert rejection(associate(port, "CT1", called="ANY-SCP")) == (0x01, 0x01, 0x07)


def test_an_unregistered_ae_depends_on_the_policy(gateway: tuple[int, UnknownAePolicy]) -> None:
    port, policy = gateway
    assoc = associate(port, "STRANGER")
    if policy == UnknownAePolicy.DENY:
        assert rejection(assoc) == (0x01, 0x01, 0x03)  # calling AE not recognised
        return
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
    assert rejection(associate(port, "WS9")) == (0x01, 0x01, 0x03)


def test_move_destinations() -> None:
    node = NODES[2]
    assert Grant("WS1", node, frozenset({"move"})).may_move_to("WS1")
    assert not Grant("WS1", node, frozenset({"move"})).may_move_to("ELSEWHERE")
    anyone = node.model_copy(update={"move_destinations": ["*"]})
    assert Grant("WS1", anyone, frozenset({"move"})).may_move_to("ELSEWHERE")
