"""Sync relations (admin only): CRUD at /api/sync/relations (api/rest/rule_crud.py), each
change an event; a relation with `interval_seconds` gets a Temporal Schedule `sync:<name>`
that runs it. `POST .../{name}/run` runs it now (or finds the running one); `GET
.../{name}/history` lists its runs, newest first, with what each did."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import HTTPException, Path, Query, Request
from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowExecution,
    WorkflowExecutionStatus,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import Services, ServicesDep, audit, audited, nodes_of
from api.rest.rule_crud import RuleKind, build_router
from infra.schedules import ensure_schedule
from schemas.events import SyncRelationDeleted, SyncRelationSaved
from schemas.sync import (
    RELATION_NAME_PATTERN,
    SyncInput,
    SyncRelation,
    SyncRelationBody,
    SyncResult,
)
from workflows.sync import SyncWorkflow, sync_workflow_id


def _check_node(services: Services, body: SyncRelationBody) -> None:
    node = nodes_of(services).node(body.node)
    if node is None:
        raise HTTPException(422, f"node {body.node} is not a registered node")
    if body.push_via == "stow" and not node.dicomweb_url:
        raise HTTPException(422, f"node {body.node} has no dicomweb_url for STOW-RS")
    if body.pull_via == "wado" and not node.dicomweb_url:
        raise HTTPException(422, f"node {body.node} has no dicomweb_url for QIDO/WADO-RS")
    if body.compare == "instances" and not (
        (node.dicomweb_url or "").rstrip("/").endswith("/dicom-web") and node.api_key_sealed
    ):
        raise HTTPException(
            422,
            f"compare: instances needs node {body.node} to be another instance of this "
            "platform: its dicomweb_url <base>/dicom-web and an api_key of a user there",
        )
    if body.conflicts != "keep-both" and body.compare != "instances":
        raise HTTPException(
            422, "a conflict policy needs compare: instances (only digests find conflicts)"
        )


def _schedule(services: Services, relation: SyncRelation) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SyncWorkflow.run,
            SyncInput(relation=relation, requested_by="schedule"),
            id=sync_workflow_id(relation.name),
            task_queue=services.settings.temporal.ingest_task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=relation.interval_seconds))]
        ),
        # A run still going when the next is due: skip it, never two at once.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def _after_save(services: Services, relation: SyncRelation) -> None:
    wanted = relation.enabled and relation.interval_seconds > 0
    schedule = _schedule(services, relation) if wanted else None
    await ensure_schedule(await services.temporal(), sync_workflow_id(relation.name), schedule)


async def _after_delete(services: Services, name: str) -> None:
    await ensure_schedule(await services.temporal(), sync_workflow_id(name), None)


SYNC = RuleKind(
    "sync",
    SyncRelationBody,
    SyncRelation,
    lambda services: services.sync,
    lambda rule, actor: SyncRelationSaved(rule=rule, actor=actor),
    lambda name, version, actor: SyncRelationDeleted(name=name, rule_version=version, actor=actor),
    _check_node,
    _after_save,
    _after_delete,
)
router = build_router("/api/sync/relations", "sync", SYNC, RELATION_NAME_PATTERN)
RelationName = Annotated[str, Path(pattern=RELATION_NAME_PATTERN)]


class SyncStarted(BaseModel):
    workflow_id: str
    already_running: bool
    status_url: str


@router.post("/{name}/run", status_code=202, response_model=SyncStarted)
async def run_sync(name: RelationName, request: Request, services: ServicesDep) -> SyncStarted:
    relation = SYNC.rules_of(services).rule(name)
    if relation is None:
        raise HTTPException(404, f"no sync relation {name}")
    client = await services.temporal()
    workflow_id = sync_workflow_id(name)
    running = False
    try:
        await client.start_workflow(
            SyncWorkflow.run,
            SyncInput(relation=relation, requested_by=request.state.caller.name),
            id=workflow_id,
            task_queue=services.settings.temporal.ingest_task_queue,
        )
    except WorkflowAlreadyStartedError:
        running = True
    audit(request, "sync-run", "success", f"{name} with {relation.node}")
    return SyncStarted(
        workflow_id=workflow_id, already_running=running, status_url=f"/api/jobs/{workflow_id}"
    )


class SyncRun(BaseModel):
    workflow_id: str
    run_id: str
    status: str
    started_at: datetime | None
    closed_at: datetime | None
    result: SyncResult | None  # what it pulled, pushed, could not move; null unless completed


async def _run(client: Client, execution: WorkflowExecution) -> SyncRun:
    result = None
    if execution.status is WorkflowExecutionStatus.COMPLETED:
        handle = client.get_workflow_handle(
            execution.id, run_id=execution.run_id, result_type=SyncResult
        )
        result = await handle.result()
    return SyncRun(
        workflow_id=execution.id,
        run_id=execution.run_id,
        status=execution.status.name.title() if execution.status else "Unknown",
        started_at=execution.start_time,
        closed_at=execution.close_time,
        result=result,
    )


@router.get("/{name}/history", response_model=list[SyncRun], dependencies=[audited("sync-history")])
async def sync_history(
    name: RelationName,
    request: Request,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[SyncRun]:
    """The relation's runs, newest first, with what each did (from Temporal, which keeps
    closed runs for its retention period; `pacs.sync.completed` events keep them for good)."""
    client = await services.temporal()
    query = f"WorkflowId = '{sync_workflow_id(name)}'"
    executions = [e async for e in client.list_workflows(query, limit=limit)]
    runs = list(await asyncio.gather(*(_run(client, e) for e in executions)))
    # The studies the answer names, each an access in the audit trail as any study read.
    shown = sorted({uid for r in runs if r.result for uid in (*r.result.pulled, *r.result.pushed)})
    request.state.audit_subjects = [{"study_instance_uid": uid} for uid in shown]
    return runs
