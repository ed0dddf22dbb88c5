"""Archive activities: move landed instances into the archive bucket and announce it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from temporalio import activity

from activities.heartbeat import heartbeating
from infra.eventlog import EventPublisher
from infra.metrics import ARCHIVE_LAG_SECONDS
from infra.storage.archive import ContentDigest, archive_key, content_digest
from infra.storage.landing import Landing
from infra.storage.tiers import Tiers
from schemas.events import InstanceStored, StudyStabilized, fact_event_id
from schemas.workflows import (
    ArchiveBatch,
    ArchivedInstance,
    ArchiveResult,
    LandedInstance,
    StudyStableNotice,
)

log = logging.getLogger(__name__)

# SeaweedFS gains nothing past a handful of concurrent PUTs on two cores.
ARCHIVE_CONCURRENCY = 8


def observe_archive_lag(landed: Sequence[LandedInstance], stored: Sequence[InstanceStored]) -> None:
    """Received-to-archived time of each instance this batch archived (a retry that found
    it already archived counts again: the lag is what a reader of the archive waited)."""
    done = {(e.instance.sop_instance_uid, e.instance.sha256) for e in stored}
    now = datetime.now(UTC)
    for instance in landed:
        key = (instance.instance.sop_instance_uid, instance.instance.sha256)
        if instance.received_at is not None and key in done:
            ARCHIVE_LAG_SECONDS.observe(max(0.0, (now - instance.received_at).total_seconds()))


class StorageActivities:
    """Built once per worker with its clients; every method is safe to retry."""

    def __init__(
        self, landings: Mapping[str, Landing], tiers: Tiers, publisher: EventPublisher
    ) -> None:
        self.landings = landings
        self.tiers = tiers
        self.archive = tiers.hot  # where instances are archived
        self.publisher = publisher
        self._limit = asyncio.Semaphore(ARCHIVE_CONCURRENCY)

    def _copy_one(self, landed: LandedInstance) -> InstanceStored | None:
        """Copy one landed instance and verify the archived copy by its content.

        The landed copy is read twice, a part at a time: once for its digest (checked against
        the checksum taken when it was received), once to upload it. A retry that finds the
        object already archived verifies it against that digest too, and writes it again if
        it does not hold these bytes.

        The instance may be in any tier (its study moved to warm or cold, then a copy sent
        again): identical there, it stays there; another version replaces it in hot, the
        one it replaces kept (in the archive bucket) and removed from its tier.
        """
        ref = landed.instance
        key = archive_key(ref.study_instance_uid, ref.series_instance_uid, ref.sop_instance_uid)
        found = self.tiers.find(key)
        current = found.stored if found else None
        holder = found.store if found else self.archive
        stored_event = InstanceStored(
            event_id=fact_event_id("stored", ref.sop_instance_uid, ref.sha256),
            instance=ref,
            bucket=self.archive.bucket,
            archive_key=key,
            tier=holder.tier,
        )
        landing = self.landings[landed.landing_mode]
        with landing.reader(landed.landing_key) as stream:
            digest = None if stream is None else content_digest(stream, self.archive.part_size)
        if digest is None:
            # Landed copies are dropped after the announcement, one by one: an earlier attempt
            # may have archived and dropped this one. Only the archived bytes can tell.
            known = ContentDigest(sha256=ref.sha256, size=ref.size, etag=None)
            if current is not None and holder.verify(current, known):
                return stored_event
            log.error("landed copy %s is gone and the archive does not hold it", landed.landing_key)
            return None
        if digest.sha256 != ref.sha256:
            raise OSError(f"landed copy {landed.landing_key} does not match its checksum")
        if current is not None and current.sha256 == ref.sha256:
            if holder.verify(current, digest):
                return stored_event  # a retry after the write: verified, nothing left to copy
            log.warning("archived %s does not hold the landed bytes: writing it again", key)
        elif found is not None:
            stored_event.previous_version_key = self.tiers.keep_version(found)
        with landing.reader(landed.landing_key) as stream:
            if stream is None:
                raise OSError(f"landed copy {landed.landing_key} vanished while archiving it")
            self.archive.put_verified(key, stream, digest)
        stored_event.tier = self.archive.tier
        if found is not None and found.store is not self.archive:
            found.store.remove(key)  # the replaced version, kept in the archive bucket now
        return stored_event

    async def _copy_limited(self, landed: LandedInstance) -> InstanceStored | None:
        async with self._limit:
            return await asyncio.to_thread(self._copy_one, landed)

    @activity.defn
    async def archive_instances(self, batch: ArchiveBatch) -> ArchiveResult:
        """Copy, verify, announce `pacs.instance.stored`, and only then drop the landed copies."""
        copies = asyncio.gather(*(self._copy_limited(i) for i in batch.instances))
        events = await heartbeating(copies)
        stored = [e for e in events if e is not None]
        await self.publisher.publish_many(stored)
        observe_archive_lag(batch.instances, stored)
        done = {(e.instance.sop_instance_uid, e.instance.sha256) for e in stored}
        for landed in batch.instances:
            if (landed.instance.sop_instance_uid, landed.instance.sha256) in done:
                landing = self.landings[landed.landing_mode]
                await asyncio.to_thread(landing.delete, landed.landing_key)
        return ArchiveResult(
            archived=[
                ArchivedInstance(
                    sop_instance_uid=e.instance.sop_instance_uid,
                    series_instance_uid=e.instance.series_instance_uid,
                    sha256=e.instance.sha256,
                    archive_key=e.archive_key,
                )
                for e in stored
            ]
        )

    @activity.defn
    async def announce_study_stable(self, notice: StudyStableNotice) -> None:
        """Emit `pacs.study.stabilized` (same event id on retry)."""
        await self.publisher.publish(
            StudyStabilized(
                event_id=notice.event_id,
                study_instance_uid=notice.study_instance_uid,
                patient_id=notice.patient_id,
                series_count=notice.series_count,
                instance_count=notice.instance_count,
                quiet_seconds=notice.quiet_seconds,
            )
        )
