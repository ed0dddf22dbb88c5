"""What storage keeps of a deletion until its purge: a tombstone per deletion in the archive
bucket (`tombstones/<study>/<deletion id>.json`, the scope it covers), and the objects the
purge removes (each instance's archived object and its kept versions).

The accept path reads the tombstones when an instance arrives that the archive still holds:
a copy of a deleted instance is then a new arrival (landed and announced again), never an
"identical instance already archived" that no read model would list again.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from minio.commonconfig import CopySource

from infra.storage.archive import ArchiveStore, get_bytes
from schemas.lifecycle import DeletionScope

TOMBSTONES = "tombstones/"
TRASH = "trash/"


def tombstone_key(study: str, deletion_id: str) -> str:
    return f"{TOMBSTONES}{study}/{deletion_id}.json"


@dataclass(frozen=True)
class StoredPart:
    """One object the purge of a deletion removes."""

    key: str
    size: int
    series_instance_uid: str
    sop_instance_uid: str


class Deletions:
    def __init__(self, archive: ArchiveStore) -> None:
        self.archive = archive
        self.client, self.bucket = archive.client, archive.bucket

    def put_tombstone(self, deletion_id: str, scope: DeletionScope) -> None:
        data = scope.model_dump_json().encode()
        key = tombstone_key(scope.study_instance_uid, deletion_id)
        self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type="application/json"
        )

    def covering(self, study: str, series: str, sop: str) -> str:
        """The id of a pending deletion that covers this instance, or ""."""
        prefix = f"{TOMBSTONES}{study}/"
        for item in self.client.list_objects(self.bucket, prefix):
            data = get_bytes(self.client, self.bucket, str(item.object_name))
            if data and DeletionScope.model_validate_json(data).covers(study, series, sop):
                return str(item.object_name).removeprefix(prefix).removesuffix(".json")
        return ""

    def drop_tombstone(self, study: str, deletion_id: str) -> None:
        self.client.remove_object(self.bucket, tombstone_key(study, deletion_id))

    def parts(self, scope: DeletionScope) -> Iterator[StoredPart]:
        """The archived objects and kept versions `scope` covers."""
        study = scope.study_instance_uid
        prefix = f"{study}/"
        if scope.series_instance_uid:
            prefix += f"{scope.series_instance_uid}/"
        for root in ("", "versions/"):
            for item in self.client.list_objects(self.bucket, root + prefix, recursive=True):
                key = str(item.object_name)
                series, sop = key.removeprefix(root).split("/")[1:3]
                sop = sop.removesuffix(".dcm")
                if scope.covers(study, series, sop):
                    yield StoredPart(key, int(item.size or 0), series, sop)

    def to_trash(self, deletion_id: str, key: str) -> str:
        """Move an object aside (copy, then remove); the copy's key."""
        target = f"{TRASH}{deletion_id}/{key}"
        self.client.copy_object(self.bucket, target, CopySource(self.bucket, key))
        self.client.remove_object(self.bucket, key)
        return target

    def restore(self, trashed: str, key: str) -> None:
        self.client.copy_object(self.bucket, key, CopySource(self.bucket, trashed))

    def empty_trash(self, deletion_id: str) -> None:
        prefix = f"{TRASH}{deletion_id}/"
        for item in self.client.list_objects(self.bucket, prefix, recursive=True):
            self.client.remove_object(self.bucket, str(item.object_name))
