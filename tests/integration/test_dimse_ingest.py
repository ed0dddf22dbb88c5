"""DIMSE ingest with independent peers: DCMTK's echoscu/storescu and pynetdicom's storescu."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.presentation import AllStoragePresentationContexts

from infra.dicom.header import HeaderError, read_header
from tests.integration.conftest import Platform, run

pytestmark = pytest.mark.integration


def fetch(platform: Platform, path: Path) -> bytes:
    """The stored object for a sent file, via WADO-RS as bare application/dicom."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    instance = (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    response = platform.get(instance, headers={"Accept": "application/dicom"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def dataset_bytes(part10: bytes) -> bytes:
    """What follows the File Meta group: the part a sender encodes and we keep unchanged."""
    ds = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
    meta_length = int(ds.file_meta.FileMetaInformationGroupLength)
    return part10[132 + 12 + meta_length :]


def test_echoscu(platform: Platform, dcmtk: None) -> None:
    host, port = platform.dicom
    result = run(["echoscu", "-aec", "PACS", host, str(port)])
    assert result.returncode == 0, result.stderr


def test_storescu_200_ct_images_all_retrievable_unchanged(
    platform: Platform, dcmtk: None, ct_study: list[Path]
) -> None:
    host, port = platform.dicom
    folder = ct_study[0].parent
    result = run(["storescu", "-aec", "PACS", "-aet", "DCMTK", "+sd", host, str(port), str(folder)])
    assert result.returncode == 0, result.stderr[-2000:]
    for path in ct_study:
        assert dataset_bytes(fetch(platform, path)) == dataset_bytes(path.read_bytes())


def _sendable_test_files(folder: Path) -> list[Path]:
    """pydicom's bundled test files of storage SOP classes, one per (transfer syntax, SOP
    class), copied under fresh UIDs: several share a SOP Instance UID, which our duplicate
    policy would rightly refuse. The dataset stays in the file's own transfer syntax."""
    storage = {str(c.abstract_syntax) for c in AllStoragePresentationContexts}
    source = Path(get_testdata_file("CT_small.dcm") or "").parent
    chosen: dict[tuple[str, str], Path] = {}
    for path in sorted(source.glob("*.dcm")):
        try:
            header = read_header(path.read_bytes())
        except HeaderError:
            continue
        if header.sop_class_uid in storage:
            chosen.setdefault((header.transfer_syntax_uid, header.sop_class_uid), path)
    copies = []
    for path in sorted(chosen.values()):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        copy = folder / path.name
        try:
            ds.save_as(copy, enforce_file_format=True)
        except Exception:  # noqa: BLE001 - pydicom cannot write every syntax it reads
            continue
        copies.append(copy)
    return copies


def test_pynetdicom_storescu_each_transfer_syntax(platform: Platform, tmp_path: Path) -> None:
    files = _sendable_test_files(tmp_path)
    syntaxes = {read_header(p.read_bytes()).transfer_syntax_uid for p in files}
    assert len(syntaxes) >= 8, f"too few transfer syntaxes in the sample: {syntaxes}"
    host, port = platform.dicom
    failed = []
    for path in files:
        result = run(
            [sys.executable, "-m", "pynetdicom", "storescu", host, str(port), str(path),
             "-aec", "PACS", "-cx", "-v"]
        )  # fmt: skip
        # The app exits 0 whatever the status; -v makes it print the status it received.
        if "Received Store Response (Status: 0x0000" not in result.stderr:
            failed.append((path.name, result.stderr[-300:]))
            continue
        sent, stored = read_header(path.read_bytes()), read_header(fetch(platform, path))
        # Stored in the transfer syntax it was sent in: no transcoding on the way in.
        assert stored.transfer_syntax_uid == sent.transfer_syntax_uid, path.name
        assert dataset_bytes(fetch(platform, path)) == dataset_bytes(path.read_bytes()), path.name
    assert not failed, failed


def test_bad_dataset_gets_a_cannot_understand_status(platform: Platform) -> None:
    from tests.dicom_factory import ct_dataset

    ds = ct_dataset("1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", 1, size=8)
    del ds.StudyInstanceUID
    ae = AE(ae_title="BADSCU")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(*platform.dicom, ae_title="PACS")
    assert assoc.is_established
    status = assoc.send_c_store(ds)
    assoc.release()
    assert status.Status == 0xC211
    assert "StudyInstanceUID" in str(status.get("ErrorComment", ""))


def test_malformed_pdu_aborts_only_that_association(platform: Platform, dcmtk: None) -> None:
    import socket

    host, port = platform.dicom
    with socket.create_connection((host, port), timeout=10) as sock:
        # PDU type 0x01 (A-ASSOCIATE-RQ) with a length that its content does not match.
        sock.sendall(b"\x01\x00\x00\x00\x00\x10" + b"\xff" * 16)
        try:
            reply = sock.recv(64)
        except (TimeoutError, ConnectionResetError):
            reply = b""
        assert not reply or reply[0] in (0x03, 0x07), reply  # reject or abort, never accept
    result = run(["echoscu", "-aec", "PACS", host, str(port)])
    assert result.returncode == 0, "the server must keep serving other associations"


@pytest.mark.parametrize(
    "syntax",
    [
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.110",  # JPEG XL lossless
    ],
)
def test_compressed_syntaxes_without_sample_files_are_stored_as_sent(
    platform: Platform, syntax: str
) -> None:
    from pydicom.encaps import encapsulate

    from tests.dicom_factory import ct_dataset

    ds = ct_dataset(generate_uid(), generate_uid(), 1, size=16)
    # We never decode pixel data on the way in, so any codestream stands in for a real one.
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(range(64))])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    ae = AE(ae_title="CODECSCU")
    ae.add_requested_context(ds.SOPClassUID, syntax)
    assoc = ae.associate(*platform.dicom, ae_title="PACS")
    assert assoc.is_established
    status = assoc.send_c_store(ds)
    assoc.release()
    assert status.Status == 0x0000
    instance = (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    response = platform.get(instance, headers={"Accept": "application/dicom"}, timeout=30)
    assert response.status_code == 200
    stored = pydicom.dcmread(io.BytesIO(response.content))
    assert stored.file_meta.TransferSyntaxUID == syntax
    assert stored.PixelData == ds.PixelData
