"""The audit trail: events from the log as projected into ClickHouse."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AuditDep, audited, require
from infra.auth.permissions import Permission
from schemas.audit import AccessPage, AuditEvent

router = APIRouter(
    prefix="/api/audit",
    tags=["audit"],
    dependencies=[require(Permission.AUDIT_READ), audited("audit-read")],
)


@router.get("/events", response_model=list[AuditEvent])
async def list_events(
    audit: AuditDep,
    study_instance_uid: Annotated[str | None, Query(alias="StudyInstanceUID")] = None,
    event_type: Annotated[str | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[AuditEvent]:
    """Events, oldest first, filtered by study and/or type."""
    return await asyncio.to_thread(audit.events, study_instance_uid, event_type, limit)


@router.get("/access", response_model=AccessPage)
async def list_accesses(
    audit: AuditDep,
    since: Annotated[datetime | None, Query(description="from this time (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="before this time")] = None,
    actor: Annotated[str | None, Query(description="user, api-key:<id> or calling AE")] = None,
    patient_id: Annotated[str | None, Query(alias="PatientID")] = None,
    study_instance_uid: Annotated[str | None, Query(alias="StudyInstanceUID")] = None,
    action: str | None = None,
    outcome: Annotated[str | None, Query(pattern="^(success|failure|denied)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AccessPage:
    """Who accessed what, newest first: every PHI read (QIDO, WADO, C-FIND, C-MOVE, C-GET),
    login and refusal, filtered and paged. A patient filter also finds reads that named only
    the patient's study."""
    return await asyncio.to_thread(
        audit.accesses,
        since,
        until,
        limit,
        offset,
        actor=actor,
        patient_id=patient_id,
        study_instance_uid=study_instance_uid,
        action=action,
        outcome=outcome,
    )
