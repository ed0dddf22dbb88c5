"""The landing area: where received bytes are made durable before anything is acknowledged.

Two implementations behind one small interface, chosen by settings: an fsync'd spool on the
gateway's disk (fastest durable write on one node) and an S3 landing bucket (stateless
gateways). Keys are content-addressed per instance, `study/series/<sop>.<sha256>.dcm`, so a
re-sent identical object lands on the same key and a different version never overwrites it.
Versions sit beside each other in the series folder: no per-instance folder means one
directory fsync per instance instead of three.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from minio import Minio

from infra.storage.archive import Readable, get_bytes, open_object


def landing_key(study: str, series: str, sop: str, sha256: str) -> str:
    return f"{study}/{series}/{sop}.{sha256}.dcm"


def _sop_and_sha(key: str) -> tuple[str, str]:
    sop, _, sha = key.rsplit("/", 1)[-1].removesuffix(".dcm").rpartition(".")
    return sop, sha


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """A folder's entries, none once it is gone: the archive deletes a series' files and
    prunes its empty folders while others walk the spool, and Python 3.11's Path.glob
    raises FileNotFoundError for a folder that vanished between listing and reading it."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def spool_files(root: Path, study: str = "*", suffix: str = ".dcm") -> Iterator[Path]:
    """Every `study/series/<name><suffix>` file under `root` (one study, or all), in no order."""
    studies = [root / study] if study != "*" else [Path(e.path) for e in _entries(root)]
    for study_dir in studies:
        for series in _entries(study_dir):
            if not series.is_dir(follow_symlinks=False):
                continue
            for entry in _entries(Path(series.path)):
                if entry.name.endswith(suffix):
                    yield Path(entry.path)


def sha_of_key(key: str) -> str:
    return _sop_and_sha(key)[1]


def sop_of_key(key: str) -> str:
    return _sop_and_sha(key)[0]


class Landing(Protocol):
    """Durable, content-addressed staging of received objects. All calls block."""

    mode: str

    def put(self, key: str, data: bytes) -> None:
        """Return only when the bytes survive a power cut."""

    def get(self, key: str) -> bytes | None: ...

    def reader(self, key: str) -> AbstractContextManager[Readable | None]:
        """The landed bytes as a stream (None when gone), so a large object is copied a
        part at a time instead of whole in memory."""

    def delete(self, key: str) -> None: ...

    def versions(self, study: str, series: str, sop: str) -> list[str]:
        """Landed keys of one instance, oldest first."""

    def sops_in_study(self, study: str) -> set[str]:
        """SOP Instance UIDs with anything landed for a study."""

    def holds_sop(self, sop: str) -> bool:
        """Whether anything is landed for this SOP Instance UID, in any study. Scans the
        whole landing area, which the archive keeps drained: a backlog, not the archive."""

    def older_than(self, seconds: float) -> Iterator[str]:
        """Keys landed more than `seconds` ago (candidates for a lost announcement)."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PRUNE_RACE_ATTEMPTS = 5


class SpoolLanding:
    """Files under `<data_dir>/spool/landing`, written to a temp name, fsync'd, renamed."""

    mode = "spool"

    def __init__(self, root: Path) -> None:
        self.root = root / "landing"
        self.tmp = root / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key

    def _make_dirs(self, directory: Path) -> None:
        # New directory entries must be fsync'd in their parent too, or a crash can lose
        # the whole path even though the file inside was fsync'd.
        missing: list[Path] = []
        probe = directory
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        directory.mkdir(parents=True, exist_ok=True)
        for created in reversed(missing):
            _fsync_dir(created.parent)

    def put(self, key: str, data: bytes) -> None:
        final = self._path(key)
        if final.exists():
            return
        temp = self.tmp / f"{uuid.uuid4().hex}.part"
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        for attempt in range(1, PRUNE_RACE_ATTEMPTS + 1):
            self._make_dirs(final.parent)
            try:
                os.replace(temp, final)
                break
            except FileNotFoundError:
                # The archive's delete() pruned the folder, empty for a moment between our
                # mkdir and this rename (another instance of the series was just archived).
                if attempt == PRUNE_RACE_ATTEMPTS:
                    raise
        _fsync_dir(final.parent)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    @contextmanager
    def reader(self, key: str) -> Iterator[Readable | None]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            handle = None
        if handle is None:
            yield None
            return
        with handle:
            yield handle

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Prune empty parents so the spool does not fill with empty study folders.
        for parent in list(path.parents)[:2]:
            try:
                parent.rmdir()
            except OSError:
                break

    def versions(self, study: str, series: str, sop: str) -> list[str]:
        folder = self.root / study / series
        try:
            entries = sorted(folder.glob(f"{sop}.*.dcm"), key=lambda p: p.stat().st_mtime)
        except FileNotFoundError:
            return []
        # A glob on "1.2.3.*" also matches SOP "1.2.3.4": keep exact matches only.
        return [str(p.relative_to(self.root)) for p in entries if sop_of_key(p.name) == sop]

    def sops_in_study(self, study: str) -> set[str]:
        return {sop_of_key(p.name) for p in spool_files(self.root, study)}

    def holds_sop(self, sop: str) -> bool:
        return any(sop_of_key(p.name) == sop for p in spool_files(self.root, suffix=".dcm"))

    def older_than(self, seconds: float) -> Iterator[str]:
        cutoff = time.time() - seconds
        for path in spool_files(self.root):
            try:
                if path.stat().st_mtime < cutoff:
                    yield str(path.relative_to(self.root))
            except FileNotFoundError:
                continue

    def clear_temp(self) -> None:
        """Drop half-written temp files left by a crash (never acknowledged)."""
        for leftover in self.tmp.glob("*.part"):
            leftover.unlink(missing_ok=True)


class S3Landing:
    """Objects in the landing bucket: an S3 200 is the durability point."""

    mode = "s3"

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type="application/dicom"
        )

    def get(self, key: str) -> bytes | None:
        return get_bytes(self.client, self.bucket, key)

    def reader(self, key: str) -> AbstractContextManager[Readable | None]:
        return open_object(self.client, self.bucket, key)

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, key)

    def versions(self, study: str, series: str, sop: str) -> list[str]:
        objects = self.client.list_objects(self.bucket, prefix=f"{study}/{series}/{sop}.")
        found = [o for o in objects if o.object_name and sop_of_key(str(o.object_name)) == sop]
        found.sort(key=lambda o: o.last_modified.timestamp() if o.last_modified else 0.0)
        return [str(o.object_name) for o in found]

    def sops_in_study(self, study: str) -> set[str]:
        objects = self.client.list_objects(self.bucket, f"{study}/", recursive=True)
        return {sop_of_key(str(o.object_name)) for o in objects if o.object_name}

    def holds_sop(self, sop: str) -> bool:
        objects = self.client.list_objects(self.bucket, recursive=True)
        return any(o.object_name and sop_of_key(str(o.object_name)) == sop for o in objects)

    def older_than(self, seconds: float) -> Iterator[str]:
        cutoff = time.time() - seconds
        for obj in self.client.list_objects(self.bucket, recursive=True):
            modified = obj.last_modified.timestamp() if obj.last_modified else 0.0
            if obj.object_name and modified < cutoff:
                yield str(obj.object_name)
