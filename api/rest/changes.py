"""A paged change feed over the log, as integrators know it from Orthanc's `/changes`.

Each change is an event already applied to every read model: the projector applies the
catalog before the audit trail, so once a change is listed here, C-FIND and QIDO see it.
A client that stored an instance and must query it right away can wait for its
`pacs.instance.received` change instead of polling the query.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from api.deps import ServicesDep

router = APIRouter(prefix="/api", tags=["changes"])


class Change(BaseModel):
    """One event: its position on the log (`seq`), type and what it is about."""

    seq: int
    partition: int
    type: str
    occurred_at: datetime
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str


class ChangePage(BaseModel):
    """Changes after `since`, oldest first; ask again with `since=last` until `done`."""

    changes: list[Change]
    last: int
    done: bool


@router.get("/changes", response_model=ChangePage)
async def list_changes(
    services: ServicesDep,
    since: Annotated[int, Query(ge=-1, description="the last seq already seen")] = -1,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    study_instance_uid: Annotated[str | None, Query(alias="StudyInstanceUID")] = None,
    sop_instance_uid: Annotated[str | None, Query(alias="SOPInstanceUID")] = None,
) -> ChangePage:
    """Events after `since` (log offset), optionally for one study or one instance."""
    if services.clickhouse is None:
        raise HTTPException(503, "this API process does not own the read models")
    where = ["log_offset > {since:Int64}"]
    params: dict[str, object] = {"since": since, "limit": limit + 1}
    if study_instance_uid:
        where.append("study_instance_uid = {study:String}")
        params["study"] = study_instance_uid
    if sop_instance_uid:
        where.append("sop_instance_uid = {sop:String}")
        params["sop"] = sop_instance_uid
    sql = (
        "SELECT log_offset, log_partition, type, occurred_at, study_instance_uid,"
        " series_instance_uid, sop_instance_uid FROM events FINAL"
        f" WHERE {' AND '.join(where)} ORDER BY log_offset, log_partition"
        " LIMIT {limit:UInt32}"
    )
    rows = await asyncio.to_thread(services.clickhouse.rows, sql, params)
    fields = list(Change.model_fields)
    changes = [Change(**dict(zip(fields, row, strict=True))) for row in rows[:limit]]
    return ChangePage(
        changes=changes,
        last=changes[-1].seq if changes else since,
        done=len(rows) <= limit,
    )
