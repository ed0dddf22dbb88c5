"""The ETag an archive write must get back is the one S3 computes for the SDK's parts.

The server side of this (SeaweedFS answers exactly these ETags) is checked against the real
store in tests/integration/test_archive_verification.py.
"""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from minio.helpers import get_part_info

from infra.storage.archive import content_digest

PART = 5 * 1024 * 1024  # the smallest part S3 allows keeps these tests quick


def s3_etag(data: bytes, part_size: int) -> str:
    """ETag by the S3 rule, over the parts the MinIO SDK itself would cut."""
    size, count = get_part_info(len(data), part_size)
    if count == 1:
        return hashlib.md5(data).hexdigest()
    md5s = b"".join(hashlib.md5(data[i : i + size]).digest() for i in range(0, len(data), size))
    return f"{hashlib.md5(md5s).hexdigest()}-{count}"


class Trickle(io.RawIOBase):
    """Answers every read with at most 1,000 bytes, as a socket may."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self.data.read(min(size, 1000) if size >= 0 else 1000)


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 3 * PART, 3 * PART + 17], ids=str)
def test_digest_matches_the_sdk_parts_and_the_s3_etag_rule(size: int) -> None:
    data = random.Random(size).randbytes(size)
    digest = content_digest(io.BytesIO(data), PART)
    assert digest.etag == s3_etag(data, PART)
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.size == size


def test_short_reads_give_the_same_digest() -> None:
    data = random.Random(1).randbytes(2 * PART + 5)
    assert content_digest(Trickle(data), PART) == content_digest(io.BytesIO(data), PART)


def test_one_flipped_byte_in_any_part_changes_the_etag() -> None:
    data = bytearray(random.Random(2).randbytes(3 * PART))
    before = content_digest(io.BytesIO(bytes(data)), PART).etag
    data[2 * PART + 1] ^= 0x80
    assert content_digest(io.BytesIO(bytes(data)), PART).etag != before
