"""A storage tier on Azure Blob Storage: one block blob per instance in a container, its
SHA-256 kept as blob metadata, behind the same interface as an S3 tier (TierStore).

Azure's ETag is opaque (not an MD5 of the content), so every write is verified by reading
the blob back and comparing its SHA-256: a cold tier is written once per study and read
rarely, so the second read is the price of knowing. Tested against Azurite, Microsoft's
storage emulator (npm `azurite`, tests/azurite.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from infra.storage.archive import (
    ARCHIVE_PART_SIZE,
    SHA256_META,
    ContentDigest,
    Listed,
    Readable,
    StoredObject,
)

log = logging.getLogger(__name__)


class _ChunkReader:
    """A download's chunks as a stream with read(size)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1, /) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


class AzureBlobStore:
    def __init__(
        self,
        connection_string: str,
        container: str,
        tier: str,
        part_size: int = ARCHIVE_PART_SIZE,
    ) -> None:
        self.service = BlobServiceClient.from_connection_string(connection_string)
        self.container = self.service.get_container_client(container)
        self.container_name = container
        self.tier = tier
        self.part_size = part_size

    @property
    def location(self) -> str:
        return f"azure://{self.container_name}"

    def ensure(self) -> None:
        try:
            self.container.create_container()
            log.info("created container %s", self.container_name)
        except ResourceExistsError:
            pass

    def head(self, key: str) -> StoredObject | None:
        try:
            props = self.container.get_blob_client(key).get_blob_properties()
        except ResourceNotFoundError:
            return None
        meta = {k.lower(): v for k, v in (props.metadata or {}).items()}
        etag = (props.etag or "").strip('"').lower()
        return StoredObject(key=key, sha256=meta.get(SHA256_META, ""), size=props.size, etag=etag)

    def get(self, key: str) -> bytes | None:
        try:
            return self.container.download_blob(key).readall()
        except ResourceNotFoundError:
            return None

    @contextmanager
    def open(self, key: str) -> Iterator[Readable | None]:
        try:
            download = self.container.download_blob(key)
        except ResourceNotFoundError:
            yield None
            return
        yield _ChunkReader(download.chunks())

    def put_verified(self, key: str, data: Readable, digest: ContentDigest) -> None:
        self.container.upload_blob(
            key,
            data,  # type: ignore[arg-type]  # the SDK reads it with read(size)
            length=digest.size,
            overwrite=True,
            metadata={SHA256_META: digest.sha256},
            content_settings=ContentSettings(content_type="application/dicom"),
        )
        found = self.read_back_sha256(key)
        if found != digest.sha256:
            raise OSError(f"blob {key} reads back as sha256 {found}, not {digest.sha256}")

    def verify(self, stored: StoredObject, digest: ContentDigest) -> bool:
        if stored.size != digest.size or stored.sha256 != digest.sha256:
            return False
        return self.read_back_sha256(stored.key) == digest.sha256

    def read_back_sha256(self, key: str) -> str | None:
        try:
            download = self.container.download_blob(key)
        except ResourceNotFoundError:
            return None
        sha = hashlib.sha256()
        for chunk in download.chunks():
            sha.update(chunk)
        return sha.hexdigest()

    def remove(self, key: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):  # removed already: a retry
            self.container.delete_blob(key)

    def listing(self, prefix: str, start_after: str | None = None) -> Iterator[Listed]:
        # Azure lists blob names in lexicographic order, as S3 does keys.
        for blob in self.container.list_blobs(name_starts_with=prefix):
            if start_after is None or blob.name > start_after:
                yield Listed(str(blob.name), int(blob.size or 0))
