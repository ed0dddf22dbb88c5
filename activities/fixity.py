"""Fixity: re-reading archived objects and comparing their SHA-256 with the one recorded
when they were archived (the `sha256` object metadata, written only after the copy was
verified). Current objects and kept versions are checked; tombstones and trash are not.

Reads one page of keys at a time, in key order, so a run resumes where it stopped.
"""

from __future__ import annotations

import asyncio

from azure.core.exceptions import AzureError
from minio.error import S3Error
from temporalio import activity

from activities.heartbeat import heartbeating
from infra.storage.deletions import TOMBSTONES, TRASH
from infra.storage.tiers import Tiers, TierStore
from schemas.lifecycle import FixityPage, FixityProblem

VERSIONS = "versions/"


def _uids(key: str) -> tuple[str, str, str] | None:
    """Study, series and SOP UIDs of an archived object's key (`<study>/<series>/<sop>.dcm`,
    or `versions/<study>/<series>/<sop>/<sha256>.dcm`); None for other objects."""
    if key.startswith((TOMBSTONES, TRASH)):
        return None
    kept = key.startswith(VERSIONS)
    parts = key.removeprefix(VERSIONS).split("/")
    if len(parts) != (4 if kept else 3):
        return None
    return parts[0], parts[1], parts[2].removesuffix(".dcm")


class FixityActivities:
    def __init__(self, tiers: Tiers) -> None:
        self.tiers = tiers

    def _check(
        self, store: TierStore, key: str, uids: tuple[str, str, str]
    ) -> tuple[int, FixityProblem | None]:
        stored = store.head(key)
        expected = stored.sha256 if stored else ""

        def problem(found: str, reason: str) -> FixityProblem:
            study, series, sop = uids
            return FixityProblem(
                key=key,
                study_instance_uid=study,
                series_instance_uid=series,
                sop_instance_uid=sop,
                expected_sha256=expected,
                found_sha256=found,
                reason=reason,
                tier=store.tier,
            )

        if stored is None:
            return 0, None  # removed since it was listed (a purge): nothing to check
        try:
            found = store.read_back_sha256(key)
        except (S3Error, AzureError, OSError):
            found = None
        if found is None:
            return 0, problem("", "unreadable")
        if not expected:
            return stored.size, problem(found, "no recorded SHA-256")
        if found != expected:
            return stored.size, problem(found, "content differs")
        return stored.size, None

    def _page(self, study: str, start_after: str, page_size: int, tier: str) -> FixityPage:
        page = FixityPage()
        store = self.tiers[tier]
        # A study's objects, then its kept versions (in the archive bucket only): in key
        # order, as a page resumes them.
        prefixes = [f"{study}/", f"{VERSIONS}{study}/"] if study else [""]
        listed = 0
        for prefix in prefixes:
            after = start_after if start_after > prefix else None
            for item in store.listing(prefix, after):
                key = item.key
                uids = _uids(key)
                if uids is not None:
                    size, problem = self._check(store, key, uids)
                    page.checked += 1
                    page.bytes_read += size
                    if problem is not None:
                        page.problems.append(problem)
                listed += 1
                if listed >= page_size:
                    page.last_key = key
                    return page
        return page

    @activity.defn
    async def check_fixity(
        self, study: str, start_after: str, page_size: int, tier: str = "hot"
    ) -> FixityPage:
        """Up to `page_size` objects of a tier after `start_after` (in key order), re-read."""
        return await heartbeating(
            asyncio.to_thread(self._page, study, start_after, page_size, tier)
        )
