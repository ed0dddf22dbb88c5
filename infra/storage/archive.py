"""The S3 object store: client factory, the archive bucket's layout, verified writes."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

from infra.settings import S3Settings
from infra.tls.remote import s3_http_client

log = logging.getLogger(__name__)

SHA256_META = "sha256"
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}

# Archive writes go up in parts of this size (one PUT up to it), chosen here rather than by
# the SDK so the ETag the store must answer is known before the upload. 8 MiB is also the
# AWS CLI's and boto3's part size, so copies made with those tools carry the same ETag.
ARCHIVE_PART_SIZE = 8 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


class Readable(Protocol):
    """A binary stream: an open file, a BytesIO, an HTTP response body."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ContentDigest:
    """What a stored copy of some bytes must match.

    `etag` is the ETag an S3 store gives these bytes uploaded in parts of the archive's part
    size: the MD5 of the bytes for one part, else the MD5 of the parts' binary MD5s followed
    by `-<parts>`. None when it is not known (only the SHA-256 is): such a copy can only be
    verified by reading it back.
    """

    sha256: str
    size: int
    etag: str | None


def _etag_of_parts(part_md5s: list[bytes]) -> str:
    if len(part_md5s) == 1:
        return part_md5s[0].hex()
    joined = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return f"{joined}-{len(part_md5s)}"


def content_digest(stream: Readable, part_size: int = ARCHIVE_PART_SIZE) -> ContentDigest:
    """SHA-256, size and expected ETag of a stream, in one pass and bounded memory.

    Parts are cut as the MinIO SDK cuts them for a known length and part size: full parts,
    then the remainder; an empty object is one (empty) part.
    """
    sha = hashlib.sha256()
    part = hashlib.md5(usedforsecurity=False)
    part_md5s: list[bytes] = []
    in_part = size = 0
    while chunk := stream.read(min(_READ_CHUNK, part_size - in_part)):
        sha.update(chunk)
        part.update(chunk)
        in_part += len(chunk)
        size += len(chunk)
        if in_part == part_size:
            part_md5s.append(part.digest())
            part, in_part = hashlib.md5(usedforsecurity=False), 0
    if in_part or not part_md5s:
        part_md5s.append(part.digest())
    return ContentDigest(sha256=sha.hexdigest(), size=size, etag=_etag_of_parts(part_md5s))


def make_minio(settings: S3Settings, connections: int = 10) -> Minio:
    """A MinIO SDK client; it works unchanged against SeaweedFS, MinIO and AWS.

    `connections`: how many the pool keeps open; callers with more threads than the SDK's
    10 (the gateway: one per association) would otherwise open and drop one per request."""
    secure = settings.secure or settings.tls.enabled
    # Our urllib3 client: over TLS it carries the CA and client certificate; the timeouts
    # and retries are the SDK's own defaults.
    timeout = urllib3.Timeout(connect=300, read=300)
    retries = urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504])
    http = (
        s3_http_client(settings.tls, timeout, retries, connections)
        if secure
        else urllib3.PoolManager(timeout=timeout, maxsize=connections, retries=retries)
    )
    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=secure,
        region=settings.region,
        http_client=http,
    )


def ensure_buckets(client: Minio, *buckets: str) -> None:
    for bucket in buckets:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
            log.info("created bucket %s", bucket)


def is_not_found(exc: S3Error) -> bool:
    return exc.code in _NOT_FOUND


def get_bytes(client: Minio, bucket: str, key: str) -> bytes | None:
    """An object's bytes, or None when it does not exist."""
    try:
        response = client.get_object(bucket, key)
    except S3Error as exc:
        if is_not_found(exc):
            return None
        raise
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


@contextmanager
def open_object(client: Minio, bucket: str, key: str) -> Iterator[Readable | None]:
    """An object as a stream (None when it does not exist), closed on leaving."""
    try:
        response = client.get_object(bucket, key)
    except S3Error as exc:
        if not is_not_found(exc):
            raise
        yield None
        return
    try:
        yield response
    finally:
        response.close()
        response.release_conn()


def archive_key(study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str) -> str:
    """Deterministic archive key: the same instance always lands on the same object."""
    return f"{study_instance_uid}/{series_instance_uid}/{sop_instance_uid}.dcm"


def instance_of_key(key: str) -> tuple[str, str, str]:
    """Study, series and SOP Instance UIDs of an `archive_key`."""
    study, series, name = key.split("/")
    return study, series, name.removesuffix(".dcm")


def version_key(key: str, sha256: str) -> str:
    """Where an overwritten version is kept."""
    return f"versions/{key.removesuffix('.dcm')}/{sha256}.dcm"


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str  # what the writer said the bytes are: a label, not a proof
    size: int
    etag: str = ""


def _bare_etag(etag: str | None) -> str:
    return (etag or "").strip().strip('"').lower()


@dataclass(frozen=True)
class Listed:
    """One object of a listing."""

    key: str
    size: int


class ArchiveStore:
    """An S3 bucket of archived instances, one object each, its SHA-256 kept as object
    metadata: the archive bucket (the `hot` tier, also home of kept versions, tombstones and
    trash) or the bucket of another tier (infra/storage/tiers.py).

    Every write is verified by content, and so is every object a retry finds already there:
    the store's ETag must be the one computed from the landed bytes (per-part MD5s for a
    multipart write), or, where it cannot be compared (another part size, a store whose ETags
    are not MD5s), the object is read back and its SHA-256 compared. The `sha256` metadata
    alone proves nothing: it is sent before the bytes, so a failed write carries it too.
    """

    def __init__(
        self,
        client: Minio,
        bucket: str,
        part_size: int = ARCHIVE_PART_SIZE,
        tier: str = "hot",
        storage_class: str | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.part_size = part_size
        self.tier = tier
        # Sent with each write: where the endpoint keeps this tier's objects. The SDK sends
        # an x-amz- key of `metadata` as that header, not as user metadata.
        self._class = {"x-amz-storage-class": storage_class} if storage_class else {}

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}"

    def ensure(self) -> None:
        ensure_buckets(self.client, self.bucket)

    def head(self, key: str) -> StoredObject | None:
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if is_not_found(exc):
                return None
            raise
        meta = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        sha = meta.get(f"x-amz-meta-{SHA256_META}", "")
        return StoredObject(key=key, sha256=sha, size=stat.size or 0, etag=_bare_etag(stat.etag))

    def get(self, key: str) -> bytes | None:
        return get_bytes(self.client, self.bucket, key)

    def put_verified(self, key: str, data: Readable, digest: ContentDigest) -> None:
        """Write `digest.size` bytes from `data` and check the store holds exactly them.

        `digest` comes from a pass over the same bytes before this one, so the ETag the
        store computed over what it received is compared with ours, part by part in effect.
        The SDK reads `data` a part at a time: a large object is never held whole in memory.
        """
        result = self.client.put_object(
            self.bucket,
            key,
            cast(BinaryIO, data),  # the SDK only ever calls read(size)
            digest.size,
            content_type="application/dicom",
            metadata={SHA256_META: digest.sha256, **self._class},
            part_size=self.part_size,
        )
        if not self._holds(key, _bare_etag(result.etag), digest):
            raise OSError(
                f"archive write of {key} not verified: etag {result.etag} != {digest.etag} "
                f"and its content does not read back as sha256 {digest.sha256}"
            )

    def verify(self, stored: StoredObject, digest: ContentDigest) -> bool:
        """True only if the stored object holds exactly the bytes `digest` describes."""
        if stored.size != digest.size or stored.sha256 != digest.sha256:
            return False
        return self._holds(stored.key, stored.etag, digest)

    def _holds(self, key: str, etag: str, digest: ContentDigest) -> bool:
        if digest.etag is not None and etag == digest.etag:
            return True
        # Not necessarily wrong bytes: an ETag of another part size, or of a store whose ETags
        # are not MD5s (SSE-KMS on AWS), says nothing either way. Only the content decides.
        log.info("etag %s of %s is not %s: reading the object back", etag, key, digest.etag)
        return self.read_back_sha256(key) == digest.sha256

    def read_back_sha256(self, key: str) -> str | None:
        """SHA-256 of the stored object, streamed (None when it does not exist)."""
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if is_not_found(exc):
                return None
            raise
        sha = hashlib.sha256()
        try:
            for chunk in response.stream(_READ_CHUNK):
                sha.update(chunk)
        finally:
            response.close()
            response.release_conn()
        return sha.hexdigest()

    def open(self, key: str) -> AbstractContextManager[Readable | None]:
        return open_object(self.client, self.bucket, key)

    def remove(self, key: str) -> None:
        self.client.remove_object(self.bucket, key)

    def listing(self, prefix: str, start_after: str | None = None) -> Iterator[Listed]:
        """Objects under `prefix` in key order, after `start_after` when given."""
        for item in self.client.list_objects(
            self.bucket, prefix, recursive=True, start_after=start_after
        ):
            yield Listed(str(item.object_name), int(item.size or 0))

    def sops_in_study(self, study_instance_uid: str) -> set[str]:
        """SOP Instance UIDs archived for a study (one LIST, no per-object calls)."""
        return {
            o.key.rsplit("/", 1)[-1].removesuffix(".dcm")
            for o in self.listing(f"{study_instance_uid}/")
        }

    def keep_version(self, key: str, sha256: str) -> str:
        """Copy the current object aside before it is overwritten; returns the copy's key."""
        target = version_key(key, sha256)
        self.client.copy_object(self.bucket, target, CopySource(self.bucket, key))
        return target
