"""Applying the retention rules (admin, audited): `POST /api/retention/apply` with
`{"dry_run": true}` (the default) answers which studies the enabled rules would delete now;
with `false` it starts a RetentionWorkflow that deletes them (grace period, then purge), as
the `retention` schedule does."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import CallerDep, Services, ServicesDep, audit, read_model_unavailable, require
from infra.auth.permissions import Permission
from infra.readmodels.study_ages import matching_studies
from schemas.retention import RetentionMatch, RetentionRunInput
from schemas.study_ages import ApplyRules
from workflows.retention import RetentionWorkflow, retention_workflow_id

router = APIRouter(
    prefix="/api/retention", tags=["retention"], dependencies=[require(Permission.ADMIN)]
)


def retention_matches(services: Services, limit: int) -> list[RetentionMatch]:
    """The studies the enabled rules delete now, each by the first rule (in name order)."""
    if services.retention_rules is None or services.clickhouse is None:
        read_model_unavailable("retention rules")
    chosen: dict[str, RetentionMatch] = {}
    for rule in sorted(services.retention_rules.rules(), key=lambda r: r.name):
        if not rule.enabled:
            continue
        for study, patient in matching_studies(services.clickhouse, rule, limit):
            chosen.setdefault(
                study, RetentionMatch(rule=rule.name, study_instance_uid=study, patient_id=patient)
            )
    return sorted(chosen.values(), key=lambda m: m.study_instance_uid)[:limit]


class RetentionReport(BaseModel):
    dry_run: bool
    matched: list[RetentionMatch]


@router.post("/apply", response_model=RetentionReport)
async def apply_retention(
    body: ApplyRules, request: Request, services: ServicesDep, caller: CallerDep
) -> Any:
    """Dry run (the default): 200 with the studies the rules would delete now. Otherwise 202
    with the RetentionWorkflow that deletes them."""
    if body.dry_run:
        matched = await asyncio.to_thread(retention_matches, services, body.limit)
        for m in matched:  # the report names each study's patient: a PHI read, audited
            audit(request, "retention-dry-run", "success", m.rule, caller,
                  study_instance_uid=m.study_instance_uid, patient_id=m.patient_id)  # fmt: skip
        return RetentionReport(dry_run=True, matched=matched)
    workflow_id = retention_workflow_id(uuid.uuid4().hex[:12])
    client = await services.temporal()
    start = RetentionRunInput(
        limit=body.limit, grace_seconds=services.settings.lifecycle.delete_grace_seconds
    )
    await client.start_workflow(
        RetentionWorkflow.run,
        start,
        id=workflow_id,
        task_queue=services.settings.temporal.ingest_task_queue,
    )
    audit(request, "apply-retention", "success", workflow_id, caller)
    accepted = {"workflow_id": workflow_id, "status_url": f"/api/jobs/{workflow_id}"}
    return JSONResponse(accepted, status_code=202)
