"""Storage tiers: `hot` (the archive bucket), `warm` and `cold`, each a store of its own.

Every instance is archived into `hot`; a StudyMigrationWorkflow moves a study's objects to
another tier (copy, verify by content, announce, then remove the source). An instance's
object has the same key in every tier, so a read asks the tiers in order, hot first, and a
copy being moved is found in one tier or the other: reads need no catalog look-up and no
lock. Kept versions, tombstones and trash stay in the archive bucket.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import IO, Protocol

from infra.storage.archive import (
    ArchiveStore,
    ContentDigest,
    Listed,
    Readable,
    StoredObject,
    archive_key,
    content_digest,
    version_key,
)

# A copy between tiers is read once into memory up to this, then into a temporary file.
SPOOL_IN_MEMORY = 16 * 1024 * 1024


class TierStore(Protocol):
    """What a tier's backend does (S3: ArchiveStore; Azure: AzureBlobStore)."""

    tier: str
    part_size: int

    @property
    def location(self) -> str: ...  # s3://bucket, azure://container

    def ensure(self) -> None: ...
    def head(self, key: str) -> StoredObject | None: ...
    def get(self, key: str) -> bytes | None: ...
    def open(self, key: str) -> AbstractContextManager[Readable | None]: ...
    def put_verified(self, key: str, data: Readable, digest: ContentDigest) -> None: ...
    def verify(self, stored: StoredObject, digest: ContentDigest) -> bool: ...
    def read_back_sha256(self, key: str) -> str | None: ...
    def remove(self, key: str) -> None: ...
    def listing(self, prefix: str, start_after: str | None = None) -> Iterator[Listed]: ...


class StoredCopies(Protocol):
    """What the accept path asks of storage: one tier (the archive) or all of them."""

    def head(self, key: str) -> StoredObject | None: ...
    def sops_in_study(self, study_instance_uid: str) -> set[str]: ...


class _Tee:
    """Reads a stream and writes what it read to `copy`."""

    def __init__(self, source: Readable, copy: IO[bytes]) -> None:
        self.source, self.copy = source, copy

    def read(self, size: int = -1, /) -> bytes:
        chunk = self.source.read(size)
        self.copy.write(chunk)
        return chunk


Spooled = tuple[IO[bytes], ContentDigest]


@contextmanager
def spooled(
    store: TierStore, key: str, part_size: int
) -> Iterator[tuple[IO[bytes], ContentDigest] | None]:
    """An object read once, into a spool positioned at its start, with its digest for
    `part_size` parts (None when the object does not exist)."""
    with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as spool:
        with store.open(key) as stream:
            if stream is None:
                yield None
                return
            digest = content_digest(_Tee(stream, spool), part_size)
        spool.seek(0)
        yield spool, digest


@dataclass(frozen=True)
class Found:
    """An object and the tier that holds it."""

    store: TierStore
    stored: StoredObject

    @property
    def tier(self) -> str:
        return self.store.tier


class UnknownTier(ValueError):
    pass


class Tiers:
    """The tiers in order, hot first."""

    def __init__(self, hot: ArchiveStore, others: Sequence[TierStore] = ()) -> None:
        self.hot = hot
        self.stores: list[TierStore] = [hot, *others]
        self.names = [s.tier for s in self.stores]

    def __getitem__(self, name: str) -> TierStore:
        for store in self.stores:
            if store.tier == name:
                return store
        raise UnknownTier(f"no storage tier {name!r}: the tiers are {', '.join(self.names)}")

    def ensure(self) -> None:
        for store in self.stores:
            store.ensure()

    def find(self, key: str) -> Found | None:
        """Where the object is, hot first (a copy being moved: the tier it is in now)."""
        for store in self.stores:
            stored = store.head(key)
            if stored is not None:
                return Found(store, stored)
        return None

    def everywhere(self, key: str) -> list[Found]:
        """Every tier's copy: one, except in the moment a move has copied and not removed."""
        return [Found(s, got) for s in self.stores if (got := s.head(key)) is not None]

    def head(self, key: str) -> StoredObject | None:
        found = self.find(key)
        return found.stored if found else None

    def keep_version(self, found: Found) -> str:
        """Keep the copy `found` before another version replaces it: kept versions are in
        the archive bucket, whichever tier the replaced copy was in. Returns its key."""
        if found.store is self.hot:
            return self.hot.keep_version(found.stored.key, found.stored.sha256)
        target = version_key(found.stored.key, found.stored.sha256)
        with spooled(found.store, found.stored.key, self.hot.part_size) as copy:
            if copy is None:
                raise OSError(f"{found.stored.key} vanished from {found.tier} while keeping it")
            self.hot.put_verified(target, *copy)
        return target

    def get(self, key: str) -> bytes | None:
        found = self.fetch(key)
        return found[1] if found else None

    def fetch(self, key: str) -> tuple[str, bytes] | None:
        """The object's tier and bytes: one GET per tier asked, hot first.

        A move writes the target before it removes the source, so a move down (hot to warm
        to cold) is always found in one pass; a move up (a recall to hot) can be missed in
        the moment between the two, and is found by a second pass, asked only on a miss."""
        for _ in range(2):
            for store in self.stores:
                data = store.get(key)
                if data is not None:
                    return store.tier, data
        return None

    def instance(self, study: str, series: str, sop: str) -> bytes | None:
        return self.get(archive_key(study, series, sop))

    def sops_in_study(self, study_instance_uid: str) -> set[str]:
        """SOP Instance UIDs archived for a study in any tier (one LIST per tier)."""
        prefix = f"{study_instance_uid}/"
        return {
            o.key.rsplit("/", 1)[-1].removesuffix(".dcm")
            for store in self.stores
            for o in store.listing(prefix)
        }
