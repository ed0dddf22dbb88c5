"""Instance headers too large to travel inside their event, kept in the object store.

An enhanced multi-frame object can describe thousands of frames in its header (per-frame
functional groups): its DICOM JSON runs to megabytes, past what a broker takes in one record.
Such a header is written here, content-addressed, before its `pacs.instance.received` event
is sent, and the event references it; the catalog projection reads it back, now or in any
rebuild. Objects here are never rewritten or deleted while an event refers to them.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from minio import Minio

from infra.storage.archive import get_bytes
from schemas.events import MetadataRef


def metadata_key(study: str, series: str, sop: str, instance_sha256: str) -> str:
    """One key per received version of an instance, so a re-send lands on the same object."""
    return f"{study}/{series}/{sop}.{instance_sha256}.json"


def encode_metadata(metadata: dict[str, Any]) -> bytes:
    return json.dumps(metadata, separators=(",", ":")).encode()


class MetadataStore:
    """The metadata bucket. Blocking calls."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, key: str, blob: bytes) -> MetadataRef:
        """Durable once this returns (an S3 200)."""
        self.client.put_object(
            self.bucket, key, io.BytesIO(blob), len(blob), content_type="application/json"
        )
        return MetadataRef(
            bucket=self.bucket,
            key=key,
            sha256=hashlib.sha256(blob).hexdigest(),
            size=len(blob),
        )

    def get(self, ref: MetadataRef) -> dict[str, Any]:
        """The header an event refers to, checked against the hash the event carries."""
        blob = get_bytes(self.client, ref.bucket, ref.key)
        if blob is None:
            raise LookupError(f"instance metadata {ref.bucket}/{ref.key} is missing")
        if hashlib.sha256(blob).hexdigest() != ref.sha256:
            raise ValueError(f"instance metadata {ref.bucket}/{ref.key} does not match its hash")
        metadata: dict[str, Any] = json.loads(blob)
        return metadata
