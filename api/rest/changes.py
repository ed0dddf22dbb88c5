"""A paged change feed over the log, as integrators know it from Orthanc's `/changes`.

Each change is an event already applied to every read model: the projector applies the
catalog before the audit trail, so once a change is listed here, C-FIND and QIDO see it.
A client that stored an instance and must query it right away can wait for its
`pacs.instance.received` change instead of polling the query.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AuditDep, CallerDep, ServicesDep, audited, require, visible_to
from infra.auth.permissions import Permission
from schemas.audit import ChangePage

router = APIRouter(
    prefix="/api",
    tags=["changes"],
    dependencies=[require(Permission.STUDIES_READ), audited("changes")],
)


@router.get("/changes", response_model=ChangePage)
async def list_changes(
    audit: AuditDep,
    services: ServicesDep,
    caller: CallerDep,
    since: Annotated[int, Query(ge=-1, description="the last seq already seen")] = -1,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    study_instance_uid: Annotated[str | None, Query(alias="StudyInstanceUID")] = None,
    sop_instance_uid: Annotated[str | None, Query(alias="SOPInstanceUID")] = None,
) -> ChangePage:
    """Events after `since` (log offset), optionally for one study or one instance; a
    scoped caller sees the changes of the studies it may read (the page's `last` still
    moves on past the others)."""
    page = await asyncio.to_thread(
        audit.changes, since, limit, study_instance_uid, sop_instance_uid
    )
    visible = await visible_to(services, caller)
    if visible is not None:
        page.changes = [c for c in page.changes if c.study_instance_uid in visible.studies]
    return page
