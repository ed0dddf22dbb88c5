"""Storage tiers through REST (admin only, each change audited): move a study to a tier
(`POST /api/studies/{study}/migrate`), see each tier's usage (`GET /api/storage/tiers`),
apply the storage rules now or see what they would move (`POST /api/storage/apply-rules`),
and see or force-release a study's leases (`/api/studies/{study}/lock`).
The rules themselves are CRUD at /api/storage/rules (api/rest/storage_rules.py)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import (
    CallerDep,
    Services,
    ServicesDep,
    audit,
    catalog_of,
    read_model_unavailable,
    require,
)
from api.rest.studies import UidPath
from infra.auth.permissions import Permission
from infra.readmodels.tiers import StorageTiers
from infra.study_locks import StudyLocks
from schemas.catalog import InstanceQuery
from schemas.locks import LockGrant, LockState
from schemas.study_ages import ApplyRules
from schemas.tiers import TIER_NAMES, MigrationInput, RuleMatch, RulesRunInput, TierUsage
from workflows.deletion import study_keys
from workflows.migration import StudyMigrationWorkflow, migration_workflow_id
from workflows.storage_rules import StorageRulesWorkflow, rules_workflow_id

router = APIRouter(prefix="/api", tags=["storage"], dependencies=[require(Permission.ADMIN)])


def tiers_of(services: Services) -> StorageTiers:
    if services.tier_model is None:
        read_model_unavailable("storage tiers")
    return services.tier_model


def rule_matches(services: Services, limit: int) -> list[RuleMatch]:
    """The studies the enabled rules move now; a study two rules match goes to the deeper
    tier (cold over warm), by the first such rule in name order."""
    if services.storage_rules is None:
        read_model_unavailable("storage rules")
    model = tiers_of(services)
    chosen: dict[str, RuleMatch] = {}
    rules = sorted(services.storage_rules.rules(), key=lambda r: r.name)
    for rule in (r for r in rules if r.enabled):
        for study, patient in model.rule_candidates(rule, limit):
            found = chosen.get(study)
            if found is None or TIER_NAMES.index(rule.to_tier) > TIER_NAMES.index(found.to_tier):
                chosen[study] = RuleMatch(
                    rule=rule.name, to_tier=rule.to_tier, study_instance_uid=study,
                    patient_id=patient,
                )  # fmt: skip
    return sorted(chosen.values(), key=lambda m: m.study_instance_uid)[:limit]


class MigrateRequest(BaseModel):
    tier: str = Field(description="hot, warm or cold")


class JobAccepted(BaseModel):
    workflow_id: str
    status_url: str


class MigrateAccepted(JobAccepted):
    instances: int  # listed in the study when the move was asked for


@router.post("/studies/{study}/migrate", status_code=202, response_model=MigrateAccepted)
async def migrate_study(
    study: UidPath, body: MigrateRequest, request: Request, services: ServicesDep, caller: CallerDep
) -> MigrateAccepted:
    """Move every archived instance of the study to `tier` (202: a StudyMigrationWorkflow,
    its progress and result at `status_url`). 409 while another move of it runs."""
    if body.tier not in TIER_NAMES:
        raise HTTPException(
            422, f"no storage tier {body.tier!r}: the tiers are {', '.join(TIER_NAMES)}"
        )
    catalog = catalog_of(services)
    items = await asyncio.to_thread(catalog.instances, InstanceQuery(study_instance_uids=[study]))
    if not items:
        raise HTTPException(404, f"no instances of study {study} are stored")
    patient = await asyncio.to_thread(catalog.patient_id_of, study)
    workflow_id = migration_workflow_id(study)
    client = await services.temporal()
    try:
        await client.start_workflow(
            StudyMigrationWorkflow.run,
            MigrationInput(
                study_instance_uid=study,
                to_tier=body.tier,
                reason="manual",
                actor=caller.name,
                patient_id=patient,
            ),
            id=workflow_id,
            task_queue=services.settings.temporal.ingest_task_queue,
            search_attributes=study_keys(study, patient),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError:
        audit(
            request,
            "migrate",
            "failure",
            f"already moving, to {body.tier}",
            caller,
            study_instance_uid=study,
        )
        raise HTTPException(
            409, f"study {study} is being moved already: see /api/jobs/{workflow_id}"
        ) from None
    audit(request, "migrate", "success", f"to {body.tier}", caller, study_instance_uid=study)
    return MigrateAccepted(
        workflow_id=workflow_id, status_url=f"/api/jobs/{workflow_id}", instances=len(items)
    )


class TierView(TierUsage):
    location: str  # s3://bucket or azure://container


@router.get("/storage/tiers", response_model=list[TierView])
async def tier_usage(services: ServicesDep) -> list[TierView]:
    """Each tier, where it is, and the instances and bytes it holds (archived ones; a
    deleted study counts until its purge)."""
    usage = await asyncio.to_thread(tiers_of(services).usage)
    return [TierView(**u.model_dump(), location=services.tiers[u.tier].location) for u in usage]


class RulesReport(BaseModel):
    dry_run: bool
    matched: list[RuleMatch]


@router.post("/storage/apply-rules", response_model=RulesReport | JobAccepted)
async def apply_rules(
    body: ApplyRules, request: Request, services: ServicesDep, caller: CallerDep
) -> Any:
    """Dry run (the default): 200 with the studies the rules would move now, and where.
    Otherwise 202: a StorageRulesWorkflow moves them (as the `tier-migration` schedule does)."""
    if body.dry_run:
        matched = await asyncio.to_thread(rule_matches, services, body.limit)
        for m in matched:  # the report names each study's patient: a PHI read, audited
            audit(request, "storage-rules-dry-run", "success", m.rule, caller,
                  study_instance_uid=m.study_instance_uid, patient_id=m.patient_id)  # fmt: skip
        return RulesReport(dry_run=True, matched=matched)
    workflow_id = rules_workflow_id(uuid.uuid4().hex[:12])
    client = await services.temporal()
    await client.start_workflow(
        StorageRulesWorkflow.run,
        RulesRunInput(at_once=services.settings.tiers.migrations_at_once, limit=body.limit),
        id=workflow_id,
        task_queue=services.settings.temporal.ingest_task_queue,
    )
    audit(request, "apply-storage-rules", "success", workflow_id, caller)
    accepted = JobAccepted(workflow_id=workflow_id, status_url=f"/api/jobs/{workflow_id}")
    return JSONResponse(accepted.model_dump(), status_code=202)


async def _locks(services: Services) -> StudyLocks:
    return StudyLocks(await services.temporal(), services.settings.temporal.ingest_task_queue)


@router.get("/studies/{study}/lock", response_model=LockState)
async def study_lock(study: UidPath, services: ServicesDep) -> LockState:
    """Who holds a lease on the study's storage (a move, a purge, retrieves), and who waits."""
    return await (await _locks(services)).state(study)


class Released(BaseModel):
    released: list[LockGrant]


@router.post("/studies/{study}/lock/release", response_model=Released)
async def release_study_lock(
    study: UidPath, request: Request, services: ServicesDep, caller: CallerDep
) -> Released:
    """Drop every lease on the study now (a holder that hangs); audited with who held them.
    What they protected goes on: a move or purge whose lease went finishes its step."""
    released = await (await _locks(services)).force_release(study)
    owners = ", ".join(g.owner for g in released) or "nothing held"
    audit(request, "lock-release", "success", owners, caller, study_instance_uid=study)
    return Released(released=released)
