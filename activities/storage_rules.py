"""What the storage and retention rules select now: asked of the API, which holds the read
models."""

from __future__ import annotations

import asyncio

from temporalio import activity

from infra.internal_api import InternalApi
from schemas.retention import RetentionMatch
from schemas.tiers import RuleMatch


class StorageRuleActivities:
    def __init__(self, catalog: InternalApi) -> None:
        self.catalog = catalog

    @activity.defn
    async def storage_candidates(self, limit: int) -> list[RuleMatch]:
        return await asyncio.to_thread(self.catalog.storage_candidates, limit)

    @activity.defn
    async def retention_candidates(self, limit: int) -> list[RetentionMatch]:
        return await asyncio.to_thread(self.catalog.retention_candidates, limit)
