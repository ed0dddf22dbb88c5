"""C-MOVE and C-GET from the real platform: DCMTK movescu/getscu/storescp and pynetdicom."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from infra.dimse.nodelay import set_nodelay
from infra.internal_api import InternalApi, api_base_url
from schemas.catalog import InstanceQuery
from tests.integration.conftest import Platform, eventually, run
from tests.integration.dimse_client import send_all

pytestmark = pytest.mark.integration


def dataset_bytes(part10: bytes) -> bytes:
    """What follows the File Meta group: what a sender encodes and we keep unchanged."""
    ds = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
    return part10[132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength) :]


def sop_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def destination_port(platform: Platform, title: str) -> int:
    return platform.settings.dicom.remote_aes[title].port


async def wait_in_catalog(platform: Platform, study: str, count: int) -> None:
    # The internal routes want credentials too: the admin's token, from logging in.
    token = platform.auth["Authorization"].removeprefix("Bearer ")
    catalog = InternalApi(api_base_url(platform.settings), lambda: token)
    query = InstanceQuery(study_instance_uids=[study])
    try:
        await eventually(lambda: len(catalog.instances(query)) == count, timeout=60)
    finally:
        catalog.close()


@pytest.fixture(scope="module")
async def ct_stored(platform: Platform, ct_study: list[Path]) -> list[Path]:
    """The 200-image CT study, sent with DCMTK storescu and visible in the catalog."""
    host, port = platform.dicom
    folder = ct_study[0].parent
    result = run(["storescu", "-aec", "PACS", "-aet", "DCMTK", "+sd", host, str(port), str(folder)])
    assert result.returncode == 0, result.stderr[-2000:]
    study = pydicom.dcmread(ct_study[0], stop_before_pixels=True).StudyInstanceUID
    await wait_in_catalog(platform, study, len(ct_study))
    return ct_study


def assert_identical(received: dict[str, bytes], sent: list[Path]) -> None:
    """Every sent instance arrived once, with exactly the dataset bytes that were stored."""
    assert len(received) == len(sent)
    for path in sent:
        assert received[sop_of(path)] == dataset_bytes(path.read_bytes()), path.name


def test_movescu_to_storescp_whole_study(
    platform: Platform, ct_stored: list[Path], tmp_path: Path, dcmtk: None
) -> None:
    port = destination_port(platform, "STORESCP")
    out = tmp_path / "storescp"
    out.mkdir()
    storescp = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "-od", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
    )
    try:
        time.sleep(0.5)
        study = pydicom.dcmread(ct_stored[0], stop_before_pixels=True).StudyInstanceUID
        host, pacs_port = platform.dicom
        started = time.monotonic()
        result = run(
            ["movescu", "-S", "-aec", "PACS", "-aet", "MOVESCU", "-aem", "STORESCP",
             "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
             host, str(pacs_port)]
        )  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        storescp.terminate()
        storescp.wait(timeout=10)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Failed" not in result.stderr or "Failed: 0" in result.stderr
    received = {sop_of(p): p.read_bytes() for p in out.iterdir()}
    assert_identical({k: dataset_bytes(v) for k, v in received.items()}, ct_stored)
    print(f"movescu: {len(ct_stored)} images in {elapsed:.2f} s")


def test_getscu_whole_study(
    platform: Platform, ct_stored: list[Path], tmp_path: Path, dcmtk: None
) -> None:
    study = pydicom.dcmread(ct_stored[0], stop_before_pixels=True).StudyInstanceUID
    host, port = platform.dicom
    started = time.monotonic()
    result = run(
        ["getscu", "-S", "-aec", "PACS", "-aet", "GETSCU", "-od", str(tmp_path),
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", host, str(port)]
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    received = {sop_of(p): dataset_bytes(p.read_bytes()) for p in tmp_path.iterdir()}
    assert_identical(received, ct_stored)
    print(f"getscu: {len(ct_stored)} images in {elapsed:.2f} s")


class Receiver:
    """A pynetdicom Storage SCP keeping the dataset bytes and syntax of everything sent."""

    def __init__(self) -> None:
        self.received: dict[str, bytes] = {}
        self.syntaxes: dict[str, str] = {}
        self.calling: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> int:
        with self.lock:
            sop = event.request.AffectedSOPInstanceUID
            self.received[sop] = event.encoded_dataset(include_meta=False)
            self.syntaxes[sop] = str(event.context.transfer_syntax)
            self.calling.add(event.assoc.requestor.ae_title.strip())
        return 0x0000


@pytest.fixture
def pyscp(platform: Platform) -> Iterator[Receiver]:
    yield from _scp(platform, "PYSCP", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])


@pytest.fixture
def implicit_scp(platform: Platform) -> Iterator[Receiver]:
    yield from _scp(platform, "IMPLICITSCP", [ImplicitVRLittleEndian])


def _scp(platform: Platform, title: str, syntaxes: list[str]) -> Iterator[Receiver]:
    receiver = Receiver()
    ae = AE(ae_title=title)
    for cx in StoragePresentationContexts:
        assert cx.abstract_syntax is not None
        ae.add_supported_context(cx.abstract_syntax, syntaxes)
    server: Any = ae.start_server(
        ("127.0.0.1", destination_port(platform, title)),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, receiver), (evt.EVT_CONN_OPEN, set_nodelay)],
    )
    try:
        yield receiver
    finally:
        server.shutdown()


def c_move(platform: Platform, identifier: Dataset, destination: str, model: Any) -> Dataset:
    ae = AE(ae_title="PYMOVESCU")
    ae.add_requested_context(model)
    assoc = ae.associate(*platform.dicom, ae_title="PACS")
    assert assoc.is_established
    try:
        responses = list(assoc.send_c_move(identifier, destination, model))
    finally:
        assoc.release()
    final: Dataset = responses[-1][0]
    return final


def test_pynetdicom_move_series_level(
    platform: Platform, ct_stored: list[Path], pyscp: Receiver
) -> None:
    header = pydicom.dcmread(ct_stored[0], stop_before_pixels=True)
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "SERIES"
    identifier.PatientID = header.PatientID
    identifier.StudyInstanceUID = header.StudyInstanceUID
    identifier.SeriesInstanceUID = header.SeriesInstanceUID
    final = c_move(platform, identifier, "PYSCP", PatientRootQueryRetrieveInformationModelMove)
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == len(ct_stored)
    assert pyscp.calling == {"PACS"}
    assert_identical(pyscp.received, ct_stored)


def test_pynetdicom_get_image_level(platform: Platform, ct_stored: list[Path]) -> None:
    chosen = ct_stored[10:15]
    header = pydicom.dcmread(chosen[0], stop_before_pixels=True)
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.StudyInstanceUID = header.StudyInstanceUID
    identifier.SeriesInstanceUID = header.SeriesInstanceUID
    identifier.SOPInstanceUID = [sop_of(p) for p in chosen]
    receiver = Receiver()
    ae = AE(ae_title="PYGETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(
        *platform.dicom,
        ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, receiver), (evt.EVT_CONN_OPEN, set_nodelay)],
    )
    assert assoc.is_established
    try:
        responses = list(assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    final = responses[-1][0]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == 5
    assert_identical(receiver.received, chosen)


def test_move_to_unknown_destination_is_refused(platform: Platform, ct_stored: list[Path]) -> None:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = pydicom.dcmread(ct_stored[0]).StudyInstanceUID
    final = c_move(platform, identifier, "NOBODY", StudyRootQueryRetrieveInformationModelMove)
    assert final.Status == 0xA801


def _jpeg_instance() -> Dataset:
    """A JPEG Lossless (SV1) object from pydicom's test files, under fresh UIDs."""
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm") or "")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID = "RETRIEVE-JPEG"
    return ds


async def test_jpeg_to_implicit_only_peer_is_transcoded(
    platform: Platform, implicit_scp: Receiver
) -> None:
    ds = _jpeg_instance()
    assert send_all(platform.dicom, [ds], [], threading.Lock()) == []
    await wait_in_catalog(platform, ds.StudyInstanceUID, 1)
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = ds.StudyInstanceUID
    final = c_move(platform, identifier, "IMPLICITSCP", StudyRootQueryRetrieveInformationModelMove)
    assert final.Status == 0x0000
    assert implicit_scp.syntaxes[ds.SOPInstanceUID] == ImplicitVRLittleEndian
    sent = pydicom.dcmread(io.BytesIO(implicit_scp.received[ds.SOPInstanceUID]), force=True)
    sent.file_meta = pydicom.dataset.FileMetaDataset()
    sent.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert sent.SOPInstanceUID == ds.SOPInstanceUID
    assert np.array_equal(sent.pixel_array, ds.pixel_array)


def pacs_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "apps.cli", *args])


def test_pacs_get_and_move_against_our_platform(
    platform: Platform, ct_stored: list[Path], tmp_path: Path
) -> None:
    header = pydicom.dcmread(ct_stored[0], stop_before_pixels=True)
    host, port = platform.dicom
    peer = ["--aet", "PACS", "--host", host, "--port", str(port)]
    keys = ["--level", "SERIES", "-k", f"StudyInstanceUID={header.StudyInstanceUID}",
            "-k", f"SeriesInstanceUID={header.SeriesInstanceUID}"]  # fmt: skip
    got = pacs_cli("get", "--out", str(tmp_path / "get"), *keys, *peer)
    assert got.returncode == 0, got.stdout + got.stderr
    received = {sop_of(p): dataset_bytes(p.read_bytes()) for p in (tmp_path / "get").iterdir()}
    assert_identical(received, ct_stored)

    receive = ["--receive-port", str(destination_port(platform, "PYSCP"))]
    moved = pacs_cli(
        "move", "--dest", "PYSCP", "--out", str(tmp_path / "move"), *receive, *keys, *peer
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"{len(ct_stored)} completed" in moved.stdout
    received = {sop_of(p): dataset_bytes(p.read_bytes()) for p in (tmp_path / "move").iterdir()}
    assert_identical(received, ct_stored)

    unknown = pacs_cli("move", "--dest", "NOBODY", *keys, *peer)
    assert unknown.returncode == 1
    assert "0xA801" in unknown.stderr
