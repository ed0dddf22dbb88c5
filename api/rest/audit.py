"""The audit trail: events from the log as projected into ClickHouse."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from api.deps import ServicesDep

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditEvent(BaseModel):
    """One event as the audit projection holds it (repeats of one event id counted once)."""

    event_id: str
    type: str
    occurred_at: datetime
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    via: str
    calling_ae: str
    client: str
    size: int
    sha256: str


@router.get("/events", response_model=list[AuditEvent])
async def list_events(
    services: ServicesDep,
    study_instance_uid: Annotated[str | None, Query(alias="StudyInstanceUID")] = None,
    event_type: Annotated[str | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[AuditEvent]:
    """Events, oldest first, filtered by study and/or type."""
    if services.clickhouse is None:
        raise HTTPException(409, "this API process does not own the audit projection")
    where = ["1"]
    params: dict[str, object] = {"limit": limit}
    if study_instance_uid:
        where.append("study_instance_uid = {study:String}")
        params["study"] = study_instance_uid
    if event_type:
        where.append("type = {type:String}")
        params["type"] = event_type
    sql = (
        "SELECT toString(event_id), type, occurred_at, study_instance_uid, series_instance_uid,"
        " sop_instance_uid, via, calling_ae, client, size, sha256"
        f" FROM events FINAL WHERE {' AND '.join(where)}"
        " ORDER BY occurred_at, event_id LIMIT {limit:UInt32}"
    )
    rows = await asyncio.to_thread(services.clickhouse.rows, sql, params)
    fields = list(AuditEvent.model_fields)
    return [AuditEvent(**dict(zip(fields, row, strict=True))) for row in rows]
