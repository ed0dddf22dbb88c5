"""The tier set's look-ups (hot first, every copy, a second pass on a miss) and the Azure
backend's download stream, with in-memory stores standing in for S3 and Azure (the real
ones are tested in tests/integration/test_tiers.py)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from infra.storage.archive import ArchiveStore, ContentDigest, Listed, Readable, StoredObject
from infra.storage.azure_blob import _ChunkReader
from infra.storage.tiers import Tiers


class MemoryTier:
    part_size = 8 * 1024 * 1024

    def __init__(self, tier: str) -> None:
        self.tier = tier
        self.objects: dict[str, bytes] = {}
        self.gets = 0

    @property
    def location(self) -> str:
        return f"memory://{self.tier}"

    def ensure(self) -> None:
        pass

    def head(self, key: str) -> StoredObject | None:
        data = self.objects.get(key)
        if data is None:
            return None
        return StoredObject(key, hashlib.sha256(data).hexdigest(), len(data))

    def get(self, key: str) -> bytes | None:
        self.gets += 1
        return self.objects.get(key)

    @contextmanager
    def open(self, key: str) -> Iterator[Readable | None]:
        data = self.objects.get(key)
        yield None if data is None else io.BytesIO(data)

    def put_verified(self, key: str, data: Readable, digest: ContentDigest) -> None:
        self.objects[key] = data.read()

    def verify(self, stored: StoredObject, digest: ContentDigest) -> bool:
        return stored.sha256 == digest.sha256

    def read_back_sha256(self, key: str) -> str | None:
        data = self.objects.get(key)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def remove(self, key: str) -> None:
        self.objects.pop(key, None)

    def listing(self, prefix: str, start_after: str | None = None) -> Iterator[Listed]:
        for key in sorted(self.objects):
            if key.startswith(prefix) and (start_after is None or key > start_after):
                yield Listed(key, len(self.objects[key]))


class MovingUp(MemoryTier):
    """A hot tier into which a recall writes between a reader's first and second pass."""

    def __init__(self, arriving: dict[str, bytes]) -> None:
        super().__init__("hot")
        self.arriving = arriving

    def get(self, key: str) -> bytes | None:
        found = super().get(key)
        if found is None and self.gets == 1:
            self.objects.update(self.arriving)  # the copy lands after we asked
        return found


def tiers(hot: MemoryTier, *others: MemoryTier) -> Tiers:
    return Tiers(cast(ArchiveStore, hot), list(others))


def test_reads_ask_hot_first_and_find_every_copy() -> None:
    hot, warm, cold = MemoryTier("hot"), MemoryTier("warm"), MemoryTier("cold")
    warm.objects["s/se/a.dcm"] = b"in warm"
    cold.objects["s/se/a.dcm"] = b"in warm"  # a move copied, not yet removed
    cold.objects["s/se/b.dcm"] = b"in cold"
    found = tiers(hot, warm, cold)
    assert found.fetch("s/se/a.dcm") == ("warm", b"in warm")
    assert found.instance("s", "se", "b") == b"in cold"
    assert [f.tier for f in found.everywhere("s/se/a.dcm")] == ["warm", "cold"]
    assert found.sops_in_study("s") == {"a", "b"}
    assert found.fetch("s/se/none.dcm") is None
    assert found["cold"] is cold
    try:
        found["tepid"]
    except ValueError as exc:
        assert "hot, warm, cold" in str(exc)
    else:
        raise AssertionError("an unknown tier must be refused")


def test_a_miss_everywhere_asks_once_more() -> None:
    cold = MemoryTier("cold")
    hot = MovingUp({"s/se/a.dcm": b"recalled"})  # cold lost it to hot meanwhile
    assert tiers(hot, MemoryTier("warm"), cold).fetch("s/se/a.dcm") == ("hot", b"recalled")


def test_a_version_replaced_in_cold_is_kept_in_the_archive_bucket() -> None:
    hot, cold = MemoryTier("hot"), MemoryTier("cold")
    cold.objects["s/se/a.dcm"] = b"old version"
    sha = hashlib.sha256(b"old version").hexdigest()
    found = tiers(hot, cold)
    located = found.find("s/se/a.dcm")
    assert located is not None and located.tier == "cold"
    kept = found.keep_version(located)
    assert kept == f"versions/s/se/a/{sha}.dcm" and hot.objects[kept] == b"old version"


def test_the_azure_download_stream_reads_in_any_sizes() -> None:
    reader = _ChunkReader(iter([b"abc", b"", b"defgh", b"i"]))
    parts: list[Any] = [reader.read(2), reader.read(4), reader.read(), reader.read(1)]
    assert parts == [b"ab", b"cdef", b"ghi", b""]
