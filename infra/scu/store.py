"""C-STORE of files and folders over one or more associations."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import _config

from infra.dicom.header import HeaderError, InstanceHeader, read_header
from infra.dicom.transcode import TranscodeError
from infra.dimse.sending import accepted_syntaxes, prepare
from infra.dimse.store_contexts import store_contexts
from infra.scu.peer import Peer, ScuError, associate

# A path is given to send_c_store only when the peer takes the file's own transfer syntax
# (below): pynetdicom then streams the stored data set as it is, with no decoding and
# encoding again (pydicom's parse and write were most of a forwarded image's CPU).
_config.STORE_SEND_CHUNKED_DATASET = True


@dataclass(frozen=True)
class FileResult:
    """What happened to one file: `status` is the peer's C-STORE status, None if not sent."""

    path: Path
    sop_instance_uid: str
    status: int | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and (self.status == 0x0000 or self.status >> 12 == 0xB)


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given, folders walked recursively, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise ScuError(f"{path} does not exist")
    return found


def _send_share(
    peer: Peer,
    pending: queue.Queue[tuple[Path, InstanceHeader]],
    contexts_for: list[tuple[str, str]],
    report: Callable[[FileResult], None],
    errors: list[ScuError],
) -> None:
    try:
        assoc = associate(peer, store_contexts(contexts_for))
    except ScuError as exc:
        errors.append(exc)
        return
    try:
        message_id = 0
        while True:
            try:
                path, header = pending.get_nowait()
            except queue.Empty:
                return
            sop = header.sop_instance_uid
            accepted = accepted_syntaxes(assoc, header.sop_class_uid)
            dataset: Dataset | Path = path
            try:
                if header.transfer_syntax_uid not in accepted:
                    dataset = prepare(path.read_bytes(), accepted)
            except TranscodeError as exc:
                report(FileResult(path, sop, None, exc.reason))
                continue
            except Exception as exc:  # noqa: BLE001 - a bad file fails that file only
                report(FileResult(path, sop, None, f"cannot read: {exc}"))
                continue
            message_id = message_id % 65535 + 1
            try:
                status = assoc.send_c_store(dataset, msg_id=message_id)
            except (ValueError, AttributeError, OSError) as exc:
                report(FileResult(path, sop, None, str(exc)))
                continue
            if "Status" not in status:
                # No answer: we cannot know whether it was stored; others may still send.
                report(FileResult(path, sop, None, "association lost before the response"))
                errors.append(ScuError(f"{peer} dropped an association"))
                return
            report(FileResult(path, sop, int(status.Status), str(status.get("ErrorComment", ""))))
    finally:
        if assoc.is_established:
            assoc.release()


def store_files(
    peer: Peer, files: list[Path], concurrency: int, report: Callable[[FileResult], None]
) -> list[FileResult]:
    """Send every file; `report` is called once per file as it is done (from worker threads)."""
    results: list[FileResult] = []
    lock = threading.Lock()

    def record(result: FileResult) -> None:
        with lock:
            results.append(result)
        report(result)

    pending: queue.Queue[tuple[Path, InstanceHeader]] = queue.Queue()
    pairs: list[tuple[str, str]] = []
    for path in files:
        try:
            header = read_header(path.read_bytes())
        except (HeaderError, OSError) as exc:
            record(FileResult(path, "", None, f"not sendable: {exc}"))
            continue
        pairs.append((header.sop_class_uid, header.transfer_syntax_uid))
        pending.put((path, header))
    if pending.empty():
        return results
    errors: list[ScuError] = []
    workers = [
        threading.Thread(
            target=_send_share, args=(peer, pending, pairs, record, errors), daemon=True
        )
        for _ in range(max(1, min(concurrency, pending.qsize())))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    reason = errors[0].reason if errors else "not sent"
    while not pending.empty():
        path, header = pending.get_nowait()
        record(FileResult(path, header.sop_instance_uid, None, reason))
    if errors and not any(result.status is not None for result in results):
        raise errors[0]
    return results
