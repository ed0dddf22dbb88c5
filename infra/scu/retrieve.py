"""C-MOVE and C-GET as a service user, and the Storage SCP that receives what they bring."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.presentation import StoragePresentationContexts, build_context

from infra.dimse.nodelay import set_nodelay
from infra.scu.identifier import MODELS, Level, Root, build_identifier
from infra.scu.peer import Peer, ScuError, associate

# What we take in: any common encoding, so a peer never has to transcode for us.
RECEIVE_SYNTAXES: list[str] = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
STORAGE_CLASSES = [str(cx.abstract_syntax) for cx in StoragePresentationContexts]
_PENDING = (0xFF00, 0xFF01)


@dataclass
class RetrieveOutcome:
    """The final response of a C-MOVE/C-GET and what arrived here."""

    status: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_sop_instance_uids: list[str] = field(default_factory=list)
    comment: str = ""
    received: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 0x0000


class _FileWriter:
    """EVT_C_STORE: writes each received object to `folder` as `<SOPInstanceUID>.dcm`."""

    def __init__(self, folder: Path, on_file: Callable[[Path], None]) -> None:
        self.folder = folder
        self.on_file = on_file
        self.written: list[Path] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> int:
        path = self.folder / f"{event.request.AffectedSOPInstanceUID}.dcm"
        path.write_bytes(event.encoded_dataset(include_meta=True))
        with self._lock:
            self.written.append(path)
        self.on_file(path)
        return 0x0000


def _storage_contexts(limit: int) -> list[Any]:
    return [build_context(sop_class, RECEIVE_SYNTAXES) for sop_class in STORAGE_CLASSES[:limit]]


@contextmanager
def storage_receiver(
    ae_title: str, port: int, folder: Path, on_file: Callable[[Path], None], host: str = ""
) -> Iterator[_FileWriter]:
    """A Storage SCP listening while the block runs (the destination of our C-MOVE)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = _FileWriter(folder, on_file)
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = 0
    for sop_class in STORAGE_CLASSES:
        ae.add_supported_context(sop_class, RECEIVE_SYNTAXES)
    try:
        server: Any = ae.start_server(
            (host, port),
            block=False,
            evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_C_STORE, writer)],
        )
    except OSError as exc:
        raise ScuError(f"cannot listen on port {port} for the moved instances: {exc}") from exc
    try:
        yield writer
    finally:
        server.shutdown()


def _outcome(responses: Iterator[tuple[Dataset, Dataset | None]], peer: Peer, what: str
             ) -> RetrieveOutcome:  # fmt: skip
    final: Dataset | None = None
    identifier: Dataset | None = None
    for status, answer in responses:
        if "Status" not in status:
            raise ScuError(f"{peer} sent no {what} response (association lost)")
        if status.Status not in _PENDING:
            final, identifier = status, answer
            break
    if final is None:
        raise ScuError(f"{peer} ended {what} without a final response")
    failed_uids: list[str] = []
    if identifier is not None and "FailedSOPInstanceUIDList" in identifier:
        value = identifier.FailedSOPInstanceUIDList
        failed_uids = [str(v) for v in (value if isinstance(value, list) else [value]) if v]
    return RetrieveOutcome(
        status=int(final.Status),
        completed=int(final.get("NumberOfCompletedSuboperations", 0) or 0),
        failed=int(final.get("NumberOfFailedSuboperations", 0) or 0),
        warning=int(final.get("NumberOfWarningSuboperations", 0) or 0),
        failed_sop_instance_uids=failed_uids,
        comment=str(final.get("ErrorComment", "") or ""),
    )


def move(
    peer: Peer, root: Root, level: Level, keys: list[str], destination: str
) -> RetrieveOutcome:
    """Ask `peer` to send the matches to the AE it knows as `destination`."""
    model = MODELS[(root, "move")]
    identifier = build_identifier(level, keys)
    assoc = associate(peer, [build_context(model)])
    try:
        return _outcome(assoc.send_c_move(identifier, destination, model), peer, "C-MOVE")
    finally:
        if assoc.is_established:
            assoc.release()


def get(
    peer: Peer,
    root: Root,
    level: Level,
    keys: list[str],
    folder: Path,
    on_file: Callable[[Path], None],
) -> RetrieveOutcome:
    """Fetch the matches over this association (we are the Storage SCP on it)."""
    model = MODELS[(root, "get")]
    identifier = build_identifier(level, keys)
    folder.mkdir(parents=True, exist_ok=True)
    writer = _FileWriter(folder, on_file)
    # 128 contexts at most: the Get model plus 127 storage classes.
    storage = _storage_contexts(127)
    roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in storage]
    assoc = associate(
        peer,
        [build_context(model), *storage],
        ext_neg=roles,
        handlers=[(evt.EVT_C_STORE, writer)],
    )
    try:
        outcome = _outcome(assoc.send_c_get(identifier, model), peer, "C-GET")
    finally:
        if assoc.is_established:
            assoc.release()
    outcome.received = list(writer.written)
    return outcome
