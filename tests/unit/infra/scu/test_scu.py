"""The `pacs` SCU building blocks against pynetdicom SCPs on loopback (Orthanc in
tests/integration/test_scu_cli_orthanc.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from infra.scu.echo import echo
from infra.scu.identifier import Level, build_identifier
from infra.scu.peer import AssociationError, Peer, ScuError
from infra.scu.store import FileResult, collect_files, store_files
from tests.dicom_factory import ct_series, write_series
from tests.ports import free_port


class Scp:
    def __init__(self, syntaxes: list[str] | None = None, strict_aet: bool = False) -> None:
        self.port = free_port()
        self.stored: dict[str, str] = {}
        ae = AE(ae_title="SCP")
        ae.require_called_aet = strict_aet
        ae.add_supported_context(Verification)
        for cx in StoragePresentationContexts:
            assert cx.abstract_syntax is not None
            if syntaxes:
                ae.add_supported_context(cx.abstract_syntax, syntaxes)
            else:
                ae.add_supported_context(cx.abstract_syntax)
        self.server: Any = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self.on_store)]
        )

    def on_store(self, event: Any) -> int:
        self.stored[event.request.AffectedSOPInstanceUID] = str(event.context.transfer_syntax)
        return 0x0000

    def peer(self, ae_title: str = "SCP") -> Peer:
        return Peer(host="127.0.0.1", port=self.port, ae_title=ae_title, timeout=5)


@pytest.fixture
def scp() -> Iterator[Scp]:
    node = Scp()
    yield node
    node.server.shutdown()


def test_identifier_from_keys() -> None:
    identifier = build_identifier(
        Level.SERIES, ["StudyInstanceUID=1.2.3", "Modality", "SeriesInstanceUID=1.4\\1.5"]
    )
    assert identifier.QueryRetrieveLevel == "SERIES"
    assert identifier.StudyInstanceUID == "1.2.3"
    assert identifier.Modality == ""
    assert list(identifier.SeriesInstanceUID) == ["1.4", "1.5"]


@pytest.mark.parametrize(("key", "problem"), [("PatientNmae=X", "not a DICOM keyword"),
                                              ("ReferencedStudySequence", "sequence")])  # fmt: skip
def test_identifier_rejects_bad_keys(key: str, problem: str) -> None:
    with pytest.raises(ScuError, match=problem):
        build_identifier(Level.STUDY, [key])


def test_echo(scp: Scp) -> None:
    assert echo(scp.peer()) < 5


def test_echo_closed_port() -> None:
    with pytest.raises(AssociationError, match="cannot connect"):
        echo(Peer(host="127.0.0.1", port=free_port(), timeout=5))


def test_echo_rejected_says_why() -> None:
    strict = Scp(strict_aet=True)
    try:
        with pytest.raises(
            AssociationError, match=r"rejected permanently by the service user: Called AE title"
        ):
            echo(strict.peer("WRONG"))
    finally:
        strict.server.shutdown()


def test_store_folder_over_three_associations(scp: Scp, tmp_path: Path) -> None:
    files = write_series(tmp_path / "series", ct_series(12, size=16))
    (tmp_path / "series" / "readme.txt").write_text("not DICOM")
    seen: list[FileResult] = []
    results = store_files(scp.peer(), collect_files([tmp_path]), 3, seen.append)
    assert len(seen) == len(results) == 13
    stored = [r for r in results if r.ok]
    assert len(stored) == 12 and len(scp.stored) == 12
    (bad,) = [r for r in results if not r.ok]
    assert bad.path.name == "readme.txt" and bad.status is None
    assert {p.stem for p in files} == set(scp.stored)


def test_store_to_implicit_only_peer_converts(tmp_path: Path) -> None:
    implicit = Scp(syntaxes=[ImplicitVRLittleEndian])
    try:
        files = write_series(tmp_path, ct_series(2, size=16))
        results = store_files(implicit.peer(), files, 1, lambda _: None)
        assert all(r.ok for r in results)
        assert set(implicit.stored.values()) == {ImplicitVRLittleEndian}
    finally:
        implicit.server.shutdown()


def test_store_to_nobody_raises(tmp_path: Path) -> None:
    files = write_series(tmp_path, ct_series(2, size=16))
    with pytest.raises(AssociationError, match="cannot connect"):
        store_files(Peer(host="127.0.0.1", port=free_port(), timeout=5), files, 2, print)


def test_collect_files_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ScuError, match="does not exist"):
        collect_files([tmp_path / "nothing"])
