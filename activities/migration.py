"""Moving a study's archived objects to another tier, a page of objects at a time.

For each object: read the source copy once (spooled: in memory up to 16 MiB, then in a
temporary file) while computing its digest; a copy that does not read back as its recorded
SHA-256 is damaged and stays where it is. Otherwise write it to the target and verify it by
content (ETag or read-back), then, for the whole page, announce `pacs.instance.migrated` and
only then remove the source copies. A crash at any step leaves a verified copy: before the
announcement the source is intact, after it the target is verified; a retry finds the target
verified, announces again (same event id) and removes what is left.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from dataclasses import dataclass

from temporalio import activity

from activities.heartbeat import heartbeating
from infra.eventlog import EventPublisher
from infra.storage.archive import instance_of_key
from infra.storage.tiers import Found, Tiers, TierStore, spooled
from schemas.events import InstanceMigrated, fact_event_id
from schemas.tiers import MigrationPage, MigrationPageResult

log = logging.getLogger(__name__)

# Objects copied at once: the stores, not our CPU, are what a copy waits for.
COPY_CONCURRENCY = 8


@dataclass
class _Moved:
    event: InstanceMigrated | None  # None: nothing to announce (damaged, or gone)
    sources: list[Found]
    damaged: str = ""
    copied: bool = False


class MigrationActivities:
    def __init__(self, tiers: Tiers, publisher: EventPublisher) -> None:
        self.tiers = tiers
        self.publisher = publisher
        self._limit = asyncio.Semaphore(COPY_CONCURRENCY)

    def _page_keys(self, page: MigrationPage, target: TierStore) -> list[str]:
        """The next `page_size` keys of the study held outside the target, in key order."""
        prefix = f"{page.study_instance_uid}/"
        after = page.start_after or None
        listings = []
        for store in self.tiers.stores:
            if store is target:
                continue
            found = []
            for item in store.listing(prefix, after):
                found.append(item.key)
                if len(found) >= page.page_size:
                    break
            listings.append(found)
        keys = list(dict.fromkeys(heapq.merge(*listings)))
        return keys[: page.page_size]

    def _copy(self, key: str, target: TierStore, migration_id: str, run_id: str) -> _Moved:
        copies = self.tiers.everywhere(key)
        sources = [c for c in copies if c.store is not target]
        if not sources:
            return _Moved(None, [])  # removed since it was listed (a purge, a retry)
        source = sources[0]
        with spooled(source.store, key, target.part_size) as copy:
            if copy is None:
                return _Moved(None, [])
            spool, digest = copy
            if digest.sha256 != source.stored.sha256:
                log.error("%s in %s does not read back as recorded: not moved", key, source.tier)
                return _Moved(None, [], damaged=key)
            in_target = next((c for c in copies if c.store is target), None)
            copied = in_target is None or not target.verify(in_target.stored, digest)
            if copied:
                target.put_verified(key, spool, digest)
        study, series, sop = instance_of_key(key)
        event = InstanceMigrated(
            # A retried page announces again under the same id; another run of the same
            # workflow id (the study moved back and forth) under its own.
            event_id=fact_event_id("migrated", sop, digest.sha256, migration_id, run_id),
            study_instance_uid=study,
            series_instance_uid=series,
            sop_instance_uid=sop,
            sha256=digest.sha256,
            size=digest.size,
            from_tier=source.tier,
            to_tier=target.tier,
            key=key,
            location=target.location,
            migration_id=migration_id,
        )
        return _Moved(event, sources, copied=copied)

    def _remove_sources(self, moved: _Moved) -> None:
        assert moved.event is not None
        for source in moved.sources:
            # Another version archived meanwhile (an overwrite) is not the copy we moved.
            now = source.store.head(source.stored.key)
            if now is not None and now.sha256 != moved.event.sha256:
                log.warning("%s changed in %s while moving: kept", now.key, source.tier)
                continue
            source.store.remove(source.stored.key)

    async def _copy_limited(self, key: str, target: TierStore, *ids: str) -> _Moved:
        async with self._limit:
            return await asyncio.to_thread(self._copy, key, target, *ids)

    async def _migrate(self, page: MigrationPage, *ids: str) -> MigrationPageResult:
        target = self.tiers[page.to_tier]
        keys = await asyncio.to_thread(self._page_keys, page, target)
        moves = await asyncio.gather(*(self._copy_limited(k, target, *ids) for k in keys))
        announced = [m for m in moves if m.event is not None]
        await self.publisher.publish_many([m.event for m in announced if m.event is not None])
        for moved in announced:
            await asyncio.to_thread(self._remove_sources, moved)
        result = MigrationPageResult(
            damaged=[m.damaged for m in moves if m.damaged],
            last_key=keys[-1] if len(keys) >= page.page_size else "",
        )
        for moved in announced:
            if moved.copied:
                result.moved += 1
                result.bytes_moved += moved.event.size if moved.event else 0
            else:
                result.already += 1
        return result

    @activity.defn
    async def migrate_page(self, page: MigrationPage) -> MigrationPageResult:
        """Move up to `page.page_size` objects of a study to `page.to_tier`."""
        info = activity.info()
        ids = (info.workflow_id or "", info.workflow_run_id or "")
        return await heartbeating(self._migrate(page, *ids))
