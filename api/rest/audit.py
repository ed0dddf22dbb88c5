"""The audit trail: events from the log as projected into ClickHouse."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AuditDep
from schemas.audit import AuditEvent

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("/events", response_model=list[AuditEvent])
async def list_events(
    audit: AuditDep,
    study_instance_uid: Annotated[str | None, Query(alias="StudyInstanceUID")] = None,
    event_type: Annotated[str | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[AuditEvent]:
    """Events, oldest first, filtered by study and/or type."""
    return await asyncio.to_thread(audit.events, study_instance_uid, event_type, limit)
