"""Where and what each stored instance of a study is: `GET /api/studies/{study}/storage`.

The tier of each instance (and since when) comes from the tiers read model.

Size, SHA-256 of the file and when it was received come from the catalog. With
`?dataset_digest=true` each instance is also read to give the SHA-256 of its data set
without the File Meta group, which every receiver writes for itself: two archives holding
the same object agree on that digest, so sync compares sites by it (activities/sync.py).
Reading every instance costs what a WADO-RS of the whole study does.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from api.deps import ServicesDep, audited, catalog_of, in_scope, require
from api.rest.storage_tiers import tiers_of
from api.rest.studies import UidPath
from infra.auth.permissions import Permission
from infra.dicom.part10 import dataset_sha256
from infra.storage.locate import load_instance
from schemas.catalog import CatalogInstance, InstanceQuery

router = APIRouter(
    prefix="/api",
    tags=["studies"],
    dependencies=[require(Permission.STUDIES_READ), in_scope()],
)

# Instances read at once for their data set digests: enough to keep the object store busy.
READ_CONCURRENCY = 8


class StoredInstance(BaseModel):
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    size: int
    sha256: str  # of the file as stored
    received_at: datetime | None
    # The storage tier that holds it (hot, warm, cold); "landing" until it is archived.
    tier: str = "landing"
    tier_since: datetime | None = None
    dataset_sha256: str | None = None  # asked for, and the bytes were found


async def _described(
    services: ServicesDep,
    item: CatalogInstance,
    digest: bool,
    limit: asyncio.Semaphore,
    tiers: dict[str, tuple[str, datetime]],
) -> StoredInstance:
    found = None
    if digest:
        ids = (item.study_instance_uid, item.series_instance_uid, item.sop_instance_uid)
        async with limit:
            data = await asyncio.to_thread(load_instance, services.landing, services.tiers, *ids)
            found = await asyncio.to_thread(dataset_sha256, data) if data else None
    tier, since = tiers.get(item.sop_instance_uid, ("landing", None))
    return StoredInstance(**item.model_dump(), tier=tier, tier_since=since, dataset_sha256=found)


@router.get(
    "/studies/{study}/storage",
    response_model=list[StoredInstance],
    dependencies=[audited("study-storage")],
)
async def study_storage(
    study: UidPath,
    services: ServicesDep,
    dataset_digest: Annotated[bool, Query()] = False,
) -> list[StoredInstance]:
    """Each instance of the study, in series and instance order (404 when none is stored)."""
    query = InstanceQuery(study_instance_uids=[study])
    items = await asyncio.to_thread(catalog_of(services).instances, query)
    if not items:
        raise HTTPException(404, f"no instances of study {study} are stored")
    located = await asyncio.to_thread(tiers_of(services).of_study, study)
    limit = asyncio.Semaphore(READ_CONCURRENCY)
    return list(
        await asyncio.gather(
            *(_described(services, i, dataset_digest, limit, located) for i in items)
        )
    )
