"""The S3 object store: client factory and the archive bucket's layout."""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass

from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

from infra.settings import S3Settings

log = logging.getLogger(__name__)

SHA256_META = "sha256"
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}


def make_minio(settings: S3Settings) -> Minio:
    """A MinIO SDK client; it works unchanged against SeaweedFS, MinIO and AWS."""
    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=settings.secure,
        region=settings.region,
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


def archive_key(study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str) -> str:
    """Deterministic archive key: the same instance always lands on the same object."""
    return f"{study_instance_uid}/{series_instance_uid}/{sop_instance_uid}.dcm"


def version_key(key: str, sha256: str) -> str:
    """Where an overwritten version is kept."""
    return f"versions/{key.removesuffix('.dcm')}/{sha256}.dcm"


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int


class ArchiveStore:
    """The archive bucket: one object per instance, its SHA-256 kept as object metadata."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def head(self, key: str) -> StoredObject | None:
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if is_not_found(exc):
                return None
            raise
        meta = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        sha = meta.get(f"x-amz-meta-{SHA256_META}", "")
        return StoredObject(key=key, sha256=sha, size=stat.size or 0)

    def get(self, key: str) -> bytes | None:
        return get_bytes(self.client, self.bucket, key)

    def put_verified(self, key: str, data: bytes, sha256: str) -> None:
        """Write and check that what the server stored is what we sent.

        The ETag of a single-part upload is the MD5 the server computed over the bytes it
        received, so comparing it with our own MD5 verifies the write without reading it back.
        """
        result = self.client.put_object(
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type="application/dicom",
            metadata={SHA256_META: sha256},
        )
        expected = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if (result.etag or "").strip('"') != expected:
            raise OSError(f"archive write of {key} not verified: etag {result.etag} != {expected}")

    def sops_in_study(self, study_instance_uid: str) -> set[str]:
        """SOP Instance UIDs archived for a study (one LIST, no per-object calls)."""
        objects = self.client.list_objects(self.bucket, f"{study_instance_uid}/", recursive=True)
        return {str(o.object_name).rsplit("/", 1)[-1].removesuffix(".dcm") for o in objects}

    def keep_version(self, key: str, sha256: str) -> str:
        """Copy the current object aside before it is overwritten; returns the copy's key."""
        target = version_key(key, sha256)
        self.client.copy_object(self.bucket, target, CopySource(self.bucket, key))
        return target
