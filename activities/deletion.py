"""Purging a deletion's bytes once its grace period has passed.

What the deletion covered is removed from the archive bucket (each object and its kept
versions), from the warm and cold tiers, and from the metadata bucket (headers stored beside
their events), except instances received again since the deletion, which the catalog lists
again: those are current and stay. An object is moved to trash first and removed only once
the catalog, caught up, still does not list its instance, so an arrival racing the purge is
put back, never lost. A copy still in landing is waited for (the study's archiving moves it;
the activity retries).
"""

from __future__ import annotations

import asyncio
import logging

from minio import Minio
from temporalio import activity

from activities.heartbeat import heartbeating
from infra.internal_api import InternalApi
from infra.storage.archive import archive_key, instance_of_key
from infra.storage.deletions import Deletions, StoredPart
from infra.storage.landing import Landing
from infra.storage.tiers import Tiers
from schemas.lifecycle import DeletionScope, PurgeInput, PurgeResult, RejectionInput, Tombstoned

log = logging.getLogger(__name__)


class DeletionActivities:
    def __init__(
        self,
        catalog: InternalApi,
        tiers: Tiers,
        landings: list[Landing],
        metadata_client: Minio,
        metadata_bucket: str,
    ) -> None:
        self.catalog = catalog
        self.tiers = tiers
        self.archive = tiers.hot
        self.deletions = Deletions(tiers.hot)
        self.landings = landings
        self.metadata_client, self.metadata_bucket = metadata_client, metadata_bucket

    def _listed(self, scope: DeletionScope) -> set[str]:
        """SOP Instance UIDs in scope the catalog lists now (received again since)."""
        return {i.sop_instance_uid for i in self.catalog.instances(scope.instance_query(True))}

    def _landed(self, study: str, part: StoredPart) -> bool:
        ids = (study, part.series_instance_uid, part.sop_instance_uid)
        return any(area.versions(*ids) for area in self.landings)

    def _metadata_parts(self, scope: DeletionScope) -> list[StoredPart]:
        study = scope.study_instance_uid
        prefix = f"{study}/" + (
            f"{scope.series_instance_uid}/" if scope.series_instance_uid else ""
        )
        out = []
        for item in self.metadata_client.list_objects(self.metadata_bucket, prefix, recursive=True):
            key = str(item.object_name)
            _, series, name = key.split("/", 2)
            sop = name.split(".json", 1)[0].rsplit(".", 1)[0]  # <sop>.<sha256>.json
            if scope.covers(study, series, sop):
                out.append(StoredPart(key, int(item.size or 0), series, sop))
        return out

    def _purge(self, request: PurgeInput) -> PurgeResult:
        scope, study = request.scope, request.scope.study_instance_uid
        result = PurgeResult()
        listed = self._listed(scope)
        parts = [p for p in self.deletions.parts(scope) if p.sop_instance_uid not in listed]
        waiting = sorted({p.sop_instance_uid for p in parts if self._landed(study, p)})
        if waiting:
            # Deleted while still landing: archiving will move it (then purge it all).
            raise OSError(f"{len(waiting)} deleted instance(s) still landing, e.g. {waiting[0]}")
        trashed = [(p, self.deletions.to_trash(request.deletion_id, p.key)) for p in parts]
        again = self._listed(scope)
        for part, trash in trashed:
            current = archive_key(study, part.series_instance_uid, part.sop_instance_uid)
            if part.sop_instance_uid in again and part.key == current:
                if self.archive.head(current) is None and not self._landed(study, part):
                    log.warning("%s arrived again during its purge: put back", current)
                    self.deletions.restore(trash, current)
                continue
            result.objects_removed += 1
            result.bytes_removed += part.size
        self.deletions.empty_trash(request.deletion_id)
        removed, size = self._purge_other_tiers(scope, again)
        result.objects_removed += removed
        result.bytes_removed += size
        for part in self._metadata_parts(scope):
            if part.sop_instance_uid not in again:
                self.metadata_client.remove_object(self.metadata_bucket, part.key)
                result.objects_removed += 1
                result.bytes_removed += part.size
        self.deletions.drop_tombstone(study, request.deletion_id)
        result.kept = sorted(again)
        return result

    def _purge_other_tiers(self, scope: DeletionScope, again: set[str]) -> tuple[int, int]:
        """Remove what the scope covers from warm and cold. No trash there: arrivals land
        in hot, so a copy in another tier of an instance not listed again is not a new one."""
        study, removed, size = scope.study_instance_uid, 0, 0
        prefix = f"{study}/" + (
            f"{scope.series_instance_uid}/" if scope.series_instance_uid else ""
        )
        for store in self.tiers.stores[1:]:
            for item in list(store.listing(prefix)):
                _, series, sop = instance_of_key(item.key)
                if scope.covers(study, series, sop) and sop not in again:
                    store.remove(item.key)
                    removed, size = removed + 1, size + item.size
        return removed, size

    def _tombstone(self, deletion_ids: list[str], scopes: list[DeletionScope]) -> list[Tombstoned]:
        stored: list[Tombstoned] = []
        for deletion_id, scope in zip(deletion_ids, scopes, strict=True):
            listed = self._listed(scope)
            if not listed:
                continue
            # Only what is stored: an instance named that never arrived here is a new
            # arrival when it does (as after a DELETE). A scope without instances is whole.
            narrowed = scope.model_copy(
                update={"sop_instance_uids": [u for u in scope.sop_instance_uids if u in listed]}
            )
            self.deletions.put_tombstone(deletion_id, narrowed)
            stored.append(Tombstoned(deletion_id=deletion_id, scope=narrowed))
        return stored

    @activity.defn
    async def tombstone_rejected(self, request: RejectionInput) -> list[Tombstoned]:
        """Tombstones for what a rejection note lists and the catalog (caught up) holds: the
        deletions to record, each with its scope narrowed to the instances stored."""
        return await asyncio.to_thread(self._tombstone, request.deletion_ids, request.note.scopes)

    @activity.defn
    async def tombstone_scopes(
        self, deletion_ids: list[str], scopes: list[DeletionScope]
    ) -> list[Tombstoned]:
        """Tombstones for what the catalog (caught up) holds of each scope (retention)."""
        return await asyncio.to_thread(self._tombstone, deletion_ids, scopes)

    @activity.defn
    async def purge_deleted(self, request: PurgeInput) -> PurgeResult:
        return await heartbeating(asyncio.to_thread(self._purge, request))
