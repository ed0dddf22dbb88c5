"""`pacs echo|store|find|move|get` against Debian's Orthanc, an independent DICOM peer."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.dicom_factory import ct_series, write_series
from tests.integration.conftest import run
from tests.ports import free_port

pytestmark = pytest.mark.integration

ORTHANC_AET = "ORTHANC"
CLI_AET = "PACS-CLI"


@dataclass
class Orthanc:
    dicom_port: int
    http_port: int
    receive_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def peer_args(self) -> list[str]:
        return ["--aet", ORTHANC_AET, "--host", "127.0.0.1", "--port", str(self.dicom_port)]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(binary).exists():
        pytest.fail("Orthanc is not installed: run `make test` (it installs Debian's orthanc)")
    folder = tmp_path_factory.mktemp("orthanc")
    node = Orthanc(free_port(), free_port(), free_port())
    config = {
        "Name": "scu-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "DicomAet": ORTHANC_AET,
        "DicomPort": node.dicom_port,
        "HttpPort": node.http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        # A wrong called AE title is refused, so the CLI's rejection path is exercised.
        "DicomCheckCalledAet": True,
        # Our CLI: allowed to query/retrieve, and the C-MOVE destination (its receiver).
        "DicomModalities": {CLI_AET: [CLI_AET, "127.0.0.1", node.receive_port]},
        "Plugins": [],
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config))
    log = (folder / "orthanc.log").open("wb")
    proc = subprocess.Popen(
        [binary, str(path)],
        cwd=folder,
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"Orthanc exited; see {folder / 'orthanc.log'}"
            try:
                if httpx.get(f"{node.url}/system", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Orthanc did not start within 60 s"
            time.sleep(0.25)
        yield node
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def pacs(*args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "apps.cli", *args], timeout=300)


def dataset_bytes(part10: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
    return part10[132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength) :]


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_series(
        tmp_path_factory.mktemp("series"), ct_series(24, size=128, patient_id="SCU-0001")
    )


@pytest.fixture(scope="module")
def stored(orthanc: Orthanc, series: list[Path]) -> list[Path]:
    """The series sent to Orthanc with `pacs store` over three associations."""
    result = pacs("store", str(series[0].parent), "--concurrency", "3", *orthanc.peer_args())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0x0000 Success: 24" in result.stdout
    return series


def test_echo(orthanc: Orthanc) -> None:
    result = pacs("echo", *orthanc.peer_args())
    assert result.returncode == 0, result.stderr
    assert "success" in result.stdout


def test_echo_closed_port_fails_cleanly() -> None:
    result = pacs("echo", "--host", "127.0.0.1", "--port", str(free_port()), "--timeout", "5")
    assert result.returncode == 2
    assert "cannot connect" in result.stderr
    assert "Traceback" not in result.stderr


def test_echo_wrong_called_aet_is_rejected(orthanc: Orthanc) -> None:
    result = pacs("echo", "--aet", "NOT-ORTHANC", "--host", "127.0.0.1",
                  "--port", str(orthanc.dicom_port))  # fmt: skip
    assert result.returncode == 2
    assert "rejected" in result.stderr and "called ae title" in result.stderr.lower()


def test_store_lands_every_file(orthanc: Orthanc, stored: list[Path]) -> None:
    study = pydicom.dcmread(stored[0], stop_before_pixels=True).StudyInstanceUID
    found = httpx.post(
        f"{orthanc.url}/tools/find",
        json={"Level": "Instance", "Query": {"StudyInstanceUID": study}},
        timeout=30,
    ).json()
    assert len(found) == len(stored)


def test_store_reports_unreadable_file(orthanc: Orthanc, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM")
    result = pacs("store", str(tmp_path), *orthanc.peer_args())
    assert result.returncode == 1
    assert "notes.txt" in result.stdout and "not sent" in result.stdout


def test_find_study_as_json(orthanc: Orthanc, stored: list[Path]) -> None:
    study = pydicom.dcmread(stored[0], stop_before_pixels=True).StudyInstanceUID
    result = pacs("find", "--level", "study", "-k", "PatientID=SCU-0001",
                  "-k", "StudyInstanceUID", "--json", *orthanc.peer_args())  # fmt: skip
    assert result.returncode == 0, result.stderr
    matches = json.loads(result.stdout)
    assert [m["0020000D"]["Value"][0] for m in matches] == [study]


def test_find_series_as_table(orthanc: Orthanc, stored: list[Path]) -> None:
    header = pydicom.dcmread(stored[0], stop_before_pixels=True)
    result = pacs("find", "--level", "SERIES", "-k", f"StudyInstanceUID={header.StudyInstanceUID}",
                  "-k", "SeriesInstanceUID", "-k", "Modality", *orthanc.peer_args())  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 matches" in result.stdout
    assert header.SeriesInstanceUID[-20:] in result.stdout.replace("\n", "")


def test_find_bad_keyword_is_a_usage_error(orthanc: Orthanc) -> None:
    result = pacs("find", "-k", "PatientNmae=X", *orthanc.peer_args())
    assert result.returncode == 1
    assert "not a DICOM keyword" in result.stderr


def _same_as_sent(received: list[Path], sent: list[Path]) -> None:
    by_sop = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in received}
    assert len(by_sop) == len(sent)
    for path in sent:
        sop = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert dataset_bytes(by_sop[sop].read_bytes()) == dataset_bytes(path.read_bytes())


def test_move_to_our_receiver(orthanc: Orthanc, stored: list[Path], tmp_path: Path) -> None:
    study = pydicom.dcmread(stored[0], stop_before_pixels=True).StudyInstanceUID
    result = pacs("move", "--dest", CLI_AET, "--receive-port", str(orthanc.receive_port),
                  "--out", str(tmp_path), "--calling-aet", CLI_AET,
                  "-k", f"StudyInstanceUID={study}", *orthanc.peer_args())  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "24 completed" in result.stdout
    _same_as_sent(sorted(tmp_path.glob("*.dcm")), stored)


def test_move_to_unknown_destination_fails(orthanc: Orthanc, stored: list[Path]) -> None:
    study = pydicom.dcmread(stored[0], stop_before_pixels=True).StudyInstanceUID
    result = pacs("move", "--dest", "NOBODY", "--calling-aet", CLI_AET,
                  "-k", f"StudyInstanceUID={study}", *orthanc.peer_args())  # fmt: skip
    assert result.returncode == 1
    assert "C-MOVE to NOBODY" in result.stderr


def test_get_series(orthanc: Orthanc, stored: list[Path], tmp_path: Path) -> None:
    header = pydicom.dcmread(stored[0], stop_before_pixels=True)
    result = pacs("get", "--out", str(tmp_path), "--level", "SERIES", "--calling-aet", CLI_AET,
                  "-k", f"StudyInstanceUID={header.StudyInstanceUID}",
                  "-k", f"SeriesInstanceUID={header.SeriesInstanceUID}",
                  *orthanc.peer_args())  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "24 written" in result.stdout
    _same_as_sent(sorted(tmp_path.glob("*.dcm")), stored)
