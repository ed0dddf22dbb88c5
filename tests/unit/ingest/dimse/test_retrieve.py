"""C-MOVE and C-GET SCP over real pynetdicom associations on loopback, with an in-memory
read model and storage standing in for the platform (tests/integration runs the real one)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLossless,
    JPEGLosslessSV1,
    generate_uid,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.transport import ThreadedAssociationServer

from infra.dicom.header import read_header
from infra.dimse.nodelay import set_nodelay
from infra.settings import DicomSettings, RemoteAE
from ingest.dimse.get import GetHandler
from ingest.dimse.move import MoveHandler
from ingest.dimse.retrieve import RetrieveError, RetrieveSource, instance_query
from ingest.dimse.server import build_ae
from schemas.catalog import CatalogInstance, InstanceQuery
from tests.dicom_factory import ct_series, part10_bytes
from tests.ports import free_port


def dataset_bytes(part10: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
    return part10[132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength) :]


@dataclass
class Store:
    """Bytes by SOP Instance UID plus the catalog rows the read model would hold."""

    objects: dict[str, bytes] = field(default_factory=dict)
    rows: list[CatalogInstance] = field(default_factory=list)
    patients: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    broken: bool = False
    delay: float = 0.0

    def add(self, part10: bytes) -> CatalogInstance:
        header = read_header(part10)
        row = CatalogInstance(
            study_instance_uid=header.study_instance_uid,
            series_instance_uid=header.series_instance_uid,
            sop_instance_uid=header.sop_instance_uid,
            sop_class_uid=header.sop_class_uid,
            transfer_syntax_uid=header.transfer_syntax_uid,
            size=len(part10),
        )
        self.objects[row.sop_instance_uid] = part10
        self.rows.append(row)
        self.patients[row.sop_instance_uid] = header.patient_id
        return row

    def instances(self, query: InstanceQuery) -> list[CatalogInstance]:
        if self.broken:
            raise ConnectionError("API down")
        return [
            row
            for row in self.rows
            if (
                not query.study_instance_uids or row.study_instance_uid in query.study_instance_uids
            )
            and (
                not query.series_instance_uids
                or row.series_instance_uid in query.series_instance_uids
            )
            and (not query.sop_instance_uids or row.sop_instance_uid in query.sop_instance_uids)
            and (
                query.patient_id is None or self.patients[row.sop_instance_uid] == query.patient_id
            )
        ]

    def load(self, row: CatalogInstance) -> bytes | None:
        time.sleep(self.delay)
        if row.sop_instance_uid in self.missing:
            return None
        return self.objects.get(row.sop_instance_uid)


@dataclass
class Receiver:
    """A Storage SCP that keeps exactly the dataset bytes it was sent."""

    received: dict[str, bytes] = field(default_factory=dict)
    syntaxes: dict[str, str] = field(default_factory=dict)
    originators: set[str] = field(default_factory=set)

    def __call__(self, event: Any) -> int:
        sop = event.request.AffectedSOPInstanceUID
        self.received[sop] = event.encoded_dataset(include_meta=False)
        self.syntaxes[sop] = str(event.context.transfer_syntax)
        self.originators.add(str(event.request.MoveOriginatorApplicationEntityTitle).strip())
        return 0x0000


@dataclass
class Node:
    store: Store
    address: tuple[str, int]
    destination: Receiver
    dest_port: int


def _start_destination(port: int, receiver: Receiver, syntaxes: list[str] | None) -> Any:
    ae = AE(ae_title="DEST")
    for context in StoragePresentationContexts:
        assert context.abstract_syntax is not None
        if syntaxes:
            ae.add_supported_context(context.abstract_syntax, syntaxes)
        else:
            ae.add_supported_context(
                context.abstract_syntax,
                [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLosslessSV1, JPEGLossless],
            )
    return ae.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, receiver), (evt.EVT_CONN_OPEN, set_nodelay)],
    )


def _node(dest_syntaxes: list[str] | None = None) -> Iterator[Node]:
    store = Store()
    receiver = Receiver()
    dest_port = free_port()
    destination: ThreadedAssociationServer = _start_destination(dest_port, receiver, dest_syntaxes)
    port = free_port()
    settings = DicomSettings(
        port=port,
        remote_aes={"DEST": RemoteAE(host="127.0.0.1", port=dest_port)},
        network_timeout_seconds=10,
    )
    source = RetrieveSource(catalog=store, load=store.load)
    server: Any = build_ae(settings).start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[
            (evt.EVT_CONN_OPEN, set_nodelay),
            (evt.EVT_C_MOVE, MoveHandler(settings.remote_aes, source)),
            (evt.EVT_C_GET, GetHandler(source)),
        ],
    )
    try:
        yield Node(store, ("127.0.0.1", port), receiver, dest_port)
    finally:
        server.shutdown()
        destination.shutdown()


@pytest.fixture
def node() -> Iterator[Node]:
    yield from _node()


@pytest.fixture
def implicit_only_node() -> Iterator[Node]:
    yield from _node([ImplicitVRLittleEndian])


def _study(node: Node, count: int = 5) -> list[bytes]:
    files = [part10_bytes(ds) for ds in ct_series(count, size=16)]
    for data in files:
        node.store.add(data)
    return files


def _identifier(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _get(
    node: Node, identifier: Dataset, model: Any = StudyRootQueryRetrieveInformationModelGet
) -> tuple[list[Dataset], dict[str, bytes]]:
    received: dict[str, bytes] = {}

    def on_store(event: Any) -> int:
        received[event.request.AffectedSOPInstanceUID] = event.encoded_dataset(include_meta=False)
        return 0x0000

    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(model)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(
        *node.address,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_CONN_OPEN, set_nodelay)],
    )
    assert assoc.is_established
    try:
        responses = [status for status, _ in assoc.send_c_get(identifier, model)]
    finally:
        assoc.release()
    return responses, received


def _move(
    node: Node,
    identifier: Dataset,
    destination: str = "DEST",
    model: Any = StudyRootQueryRetrieveInformationModelMove,
) -> list[tuple[Dataset, Any]]:
    ae = AE(ae_title="MOVESCU")
    ae.add_requested_context(model)
    assoc = ae.associate(
        *node.address, ae_title="PACS", evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)]
    )
    assert assoc.is_established
    try:
        return list(assoc.send_c_move(identifier, destination, model))
    finally:
        assoc.release()


def test_get_whole_study_byte_identical(node: Node) -> None:
    files = _study(node)
    study = read_header(files[0]).study_instance_uid
    responses, received = _get(node, _identifier("STUDY", StudyInstanceUID=study))
    final = responses[-1]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == 5
    # Pending responses count down what remains.
    assert [r.NumberOfRemainingSuboperations for r in responses[:-1]] == [4, 3, 2, 1, 0]
    assert len(received) == 5
    for data in files:
        assert received[read_header(data).sop_instance_uid] == dataset_bytes(data)


def test_get_image_level_uid_list(node: Node) -> None:
    files = _study(node)
    headers = [read_header(data) for data in files]
    wanted = [headers[1].sop_instance_uid, headers[3].sop_instance_uid]
    identifier = _identifier(
        "IMAGE",
        StudyInstanceUID=headers[0].study_instance_uid,
        SeriesInstanceUID=headers[0].series_instance_uid,
        SOPInstanceUID=wanted,
    )
    responses, received = _get(node, identifier)
    assert responses[-1].Status == 0x0000
    assert sorted(received) == sorted(wanted)


def test_get_patient_root_patient_level(node: Node) -> None:
    files = _study(node, 3)
    for ds in ct_series(2, size=16, patient_id="OTHER"):
        node.store.add(part10_bytes(ds))
    responses, received = _get(
        node,
        _identifier("PATIENT", PatientID="TEST-0001"),
        PatientRootQueryRetrieveInformationModelGet,
    )
    assert responses[-1].Status == 0x0000
    assert sorted(received) == sorted(read_header(data).sop_instance_uid for data in files)


def test_get_missing_bytes_is_a_failed_sub_operation_with_its_uid(node: Node) -> None:
    files = _study(node, 4)
    lost = read_header(files[2]).sop_instance_uid
    node.store.missing.add(lost)
    study = read_header(files[0]).study_instance_uid
    responses, received = _get(node, _identifier("STUDY", StudyInstanceUID=study))
    final = responses[-1]
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (3, 1)
    assert lost not in received and len(received) == 3


def test_get_all_failed_is_refused_out_of_resources(node: Node) -> None:
    files = _study(node, 2)
    node.store.missing.update(read_header(data).sop_instance_uid for data in files)
    study = read_header(files[0]).study_instance_uid
    responses, _ = _get(node, _identifier("STUDY", StudyInstanceUID=study))
    assert responses[-1].Status == 0xA702


def test_get_read_model_down_says_why(node: Node) -> None:
    node.store.broken = True
    responses, _ = _get(node, _identifier("STUDY", StudyInstanceUID="1.2.3"))
    assert responses[-1].Status == 0xA701
    assert "read model" in responses[-1].ErrorComment


def test_get_bad_identifier_says_which_key(node: Node) -> None:
    responses, _ = _get(node, _identifier("SERIES", StudyInstanceUID="1.2.3"))
    assert responses[-1].Status == 0xA900
    assert "SeriesInstanceUID" in responses[-1].ErrorComment


def test_get_no_match_is_success_with_zero(node: Node) -> None:
    responses, received = _get(node, _identifier("STUDY", StudyInstanceUID="1.2.3.4"))
    assert responses[-1].Status == 0x0000 and not received


def test_get_cancel_stops_early(node: Node) -> None:
    files = _study(node, 30)
    node.store.delay = 0.05
    study = read_header(files[0]).study_instance_uid
    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(
        *node.address,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)],
    )
    assert assoc.is_established
    statuses = []
    context_id = assoc._get_valid_context(StudyRootQueryRetrieveInformationModelGet, "", "scu")
    for status, _ in assoc.send_c_get(
        _identifier("STUDY", StudyInstanceUID=study), StudyRootQueryRetrieveInformationModelGet
    ):
        statuses.append(status)
        if len(statuses) == 2:
            assoc.send_c_cancel(1, context_id.context_id)
    assoc.release()
    assert statuses[-1].Status == 0xFE00
    assert statuses[-1].NumberOfRemainingSuboperations > 0


def test_move_whole_study_byte_identical(node: Node) -> None:
    files = _study(node)
    study = read_header(files[0]).study_instance_uid
    responses = _move(node, _identifier("STUDY", StudyInstanceUID=study))
    final = responses[-1][0]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == 5
    assert node.destination.originators == {"MOVESCU"}
    for data in files:
        assert node.destination.received[read_header(data).sop_instance_uid] == dataset_bytes(data)


def test_move_series_level_patient_root(node: Node) -> None:
    files = _study(node, 3)
    header = read_header(files[0])
    identifier = _identifier(
        "SERIES",
        PatientID="TEST-0001",
        StudyInstanceUID=header.study_instance_uid,
        SeriesInstanceUID=header.series_instance_uid,
    )
    responses = _move(node, identifier, model=PatientRootQueryRetrieveInformationModelMove)
    assert responses[-1][0].Status == 0x0000
    assert len(node.destination.received) == 3


def test_move_unknown_destination(node: Node) -> None:
    _study(node, 1)
    responses = _move(node, _identifier("STUDY", StudyInstanceUID="1.2.3"), destination="NOBODY")
    assert responses[-1][0].Status == 0xA801
    assert not node.destination.received


def test_move_study_root_has_no_patient_level(node: Node) -> None:
    responses = _move(node, _identifier("PATIENT", PatientID="TEST-0001"))
    assert responses[-1][0].Status == 0xA900
    assert "PATIENT" in responses[-1][0].ErrorComment


def _jpeg_lossless_ct() -> bytes:
    """A JPEG Lossless SV1 image from pydicom's test files, under fresh UIDs."""
    path = Path(get_testdata_file("SC_rgb_jpeg_gdcm.dcm") or "")
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    assert ds.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    return part10_bytes(ds)


def test_move_jpeg_to_implicit_only_peer_is_transcoded(implicit_only_node: Node) -> None:
    node = implicit_only_node
    data = _jpeg_lossless_ct()
    row = node.store.add(data)
    responses = _move(node, _identifier("STUDY", StudyInstanceUID=row.study_instance_uid))
    assert responses[-1][0].Status == 0x0000
    sop = row.sop_instance_uid
    assert node.destination.syntaxes[sop] == ImplicitVRLittleEndian
    sent = pydicom.dcmread(io.BytesIO(node.destination.received[sop]), force=True)
    sent.file_meta = pydicom.dataset.FileMetaDataset()
    sent.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    original = pydicom.dcmread(io.BytesIO(data))
    assert np.array_equal(sent.pixel_array, original.pixel_array)


def test_move_jpeg_to_peer_that_takes_it_is_unchanged(node: Node) -> None:
    data = _jpeg_lossless_ct()
    row = node.store.add(data)
    responses = _move(node, _identifier("STUDY", StudyInstanceUID=row.study_instance_uid))
    assert responses[-1][0].Status == 0x0000
    assert node.destination.syntaxes[row.sop_instance_uid] == JPEGLosslessSV1
    assert node.destination.received[row.sop_instance_uid] == dataset_bytes(data)


@pytest.mark.parametrize(
    ("level", "keys", "problem"),
    [
        ("FRAME", {}, "QueryRetrieveLevel"),
        ("STUDY", {}, "StudyInstanceUID is required"),
        ("SERIES", {"StudyInstanceUID": ["1.2", "1.3"], "SeriesInstanceUID": "1.4"}, "single"),
        ("STUDY", {"StudyInstanceUID": "1.2.x"}, "not dot-separated digits"),
    ],
)
def test_identifier_rules(level: str, keys: dict[str, Any], problem: str) -> None:
    with pytest.raises(RetrieveError) as caught:
        instance_query(_identifier(level, **keys), StudyRootQueryRetrieveInformationModelMove)
    assert caught.value.status == 0xA900
    assert problem in caught.value.reason


def test_identifier_uid_list_at_level() -> None:
    query = instance_query(
        _identifier("STUDY", StudyInstanceUID=["1.2", "1.3"]),
        StudyRootQueryRetrieveInformationModelMove,
    )
    assert query.study_instance_uids == ["1.2", "1.3"]
    assert query.patient_id is None


def test_patient_root_needs_patient_id() -> None:
    with pytest.raises(RetrieveError, match="PatientID"):
        instance_query(
            _identifier("STUDY", StudyInstanceUID="1.2"),
            PatientRootQueryRetrieveInformationModelMove,
        )


def test_move_cancel_stops_early(node: Node) -> None:
    files = _study(node, 30)
    node.store.delay = 0.05
    study = read_header(files[0]).study_instance_uid
    ae = AE(ae_title="MOVESCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate(*node.address, ae_title="PACS")
    assert assoc.is_established
    context = assoc._get_valid_context(StudyRootQueryRetrieveInformationModelMove, "", "scu")
    statuses = []
    for status, _ in assoc.send_c_move(
        _identifier("STUDY", StudyInstanceUID=study),
        "DEST",
        StudyRootQueryRetrieveInformationModelMove,
    ):
        statuses.append(status)
        if len(statuses) == 2:
            assoc.send_c_cancel(1, context.context_id)
    assoc.release()
    final = statuses[-1]
    assert final.Status == 0xFE00
    assert final.NumberOfRemainingSuboperations > 0
    assert len(node.destination.received) == final.NumberOfCompletedSuboperations < 30


def test_read_ahead_keeps_order_and_bounds_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.dimse import retrieve

    monkeypatch.setattr(retrieve, "READ_AHEAD_BYTES", 250)
    rows = [
        CatalogInstance(
            study_instance_uid="1.2",
            series_instance_uid="1.3",
            sop_instance_uid=f"1.4.{n}",
            sop_class_uid=CTImageStorage,
            transfer_syntax_uid=ExplicitVRLittleEndian,
            size=100,
        )
        for n in range(10)
    ]
    in_flight: list[int] = []
    started: list[str] = []

    def load(row: CatalogInstance) -> bytes:
        started.append(row.sop_instance_uid)
        return row.sop_instance_uid.encode()

    order = []
    for row, future in retrieve._read_ahead(rows, load):
        in_flight.append(len(started) - len(order))
        order.append(row.sop_instance_uid)
        assert future.result() == row.sop_instance_uid.encode()
    assert order == [row.sop_instance_uid for row in rows]
    # 250 bytes of 100-byte objects: never more than two read ahead of the one being sent.
    assert max(in_flight) <= 2
