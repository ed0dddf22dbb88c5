"""The jobs API (admin only): every workflow the platform runs, from Temporal's visibility
store, so counts agree with the Temporal UI; progress from each running workflow's
`progress` query; cancel, terminate and retry (resubmit), audited.

Filters become a Temporal list filter: `type` (workflow type), `status` (Running,
Completed, Failed, Canceled, Terminated, ContinuedAsNew, TimedOut) and the business keys
the workflows are indexed by (StudyInstanceUID, PatientID, AccessionNumber, Modality,
CallingAE). The keys
name patients and studies, so every read that returns them is a PHI access in the audit
trail, one entry per patient/study shown.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Services, ServicesDep, audit, audited, require
from infra.auth.permissions import Permission
from schemas.locks import LOCK_WORKFLOW
from schemas.workflows import JobProgress

router = APIRouter(prefix="/api/jobs", tags=["jobs"], dependencies=[require(Permission.ADMIN)])

STATUSES = {s.name.replace("_", "").lower(): s for s in WorkflowExecutionStatus}
STATUS_NAMES = {
    WorkflowExecutionStatus.RUNNING: "Running",
    WorkflowExecutionStatus.COMPLETED: "Completed",
    WorkflowExecutionStatus.FAILED: "Failed",
    WorkflowExecutionStatus.CANCELED: "Canceled",
    WorkflowExecutionStatus.TERMINATED: "Terminated",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
    WorkflowExecutionStatus.TIMED_OUT: "TimedOut",
}
KEYS = ("StudyInstanceUID", "PatientID", "AccessionNumber", "Modality", "CallingAE")
# Temporal list filters take quoted values; these characters never occur in our keys.
SAFE = str.maketrans("", "", "'\"\\")


class Job(BaseModel):
    workflow_id: str
    run_id: str | None
    type: str
    status: str
    started_at: datetime | None
    closed_at: datetime | None
    task_queue: str
    keys: dict[str, str]  # the business keys it is indexed by
    # Running jobs' `progress` query (done/total/stage); null when closed or not answering.
    progress: JobProgress | None = None
    # A completed job's return value as JSON (e.g. a fixity run's counts), in GET of one job.
    result: Any = None


class JobPage(BaseModel):
    jobs: list[Job]
    total: int  # matching jobs, all pages
    next: str | None  # pass as `page` for the next page; null on the last


def _job(execution: WorkflowExecution) -> Job:
    keys: dict[str, str] = {}
    for name, values in execution.search_attributes.items():
        if name in KEYS and values:
            keys[name] = str(values[0])
    return Job(
        workflow_id=execution.id,
        run_id=execution.run_id,
        type=execution.workflow_type,
        status=STATUS_NAMES.get(execution.status, "Unknown") if execution.status else "Unknown",
        started_at=execution.start_time,
        closed_at=execution.close_time,
        task_queue=execution.task_queue,
        keys=keys,
    )


def _query(job_type: str | None, status: str | None, keys: dict[str, str | None]) -> str:
    clauses = []
    if job_type:
        clauses.append(f"WorkflowType = '{job_type.translate(SAFE)}'")
    else:
        # Study leases are not jobs (one per retrieved study): /api/studies/{study}/lock
        # shows them; `type=StudyLockWorkflow` still lists them here.
        clauses.append(f"WorkflowType != '{LOCK_WORKFLOW}'")
    if status:
        found = STATUSES.get(status.replace("_", "").lower())
        if found is None:
            raise HTTPException(
                422, f"unknown status {status}; one of {sorted(STATUS_NAMES.values())}"
            )
        clauses.append(f"ExecutionStatus = '{STATUS_NAMES[found]}'")
    for name, value in keys.items():
        if value:
            clauses.append(f"{name} = '{value.translate(SAFE)}'")
    return " AND ".join(clauses)


# A progress query answers from the worker's cache of the workflow, or by replaying it:
# a worker that is busy or gone must not hold a listing up.
PROGRESS_TIMEOUT_SECONDS = 2.0
# Statuses a job can be resubmitted from: it ended without completing.
RETRYABLE = {
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
}


async def _progress(client: Client, job: Job) -> Job:
    if job.status != "Running":
        return job
    handle = client.get_workflow_handle(job.workflow_id, run_id=job.run_id)
    try:
        async with asyncio.timeout(PROGRESS_TIMEOUT_SECONDS):
            found = await handle.query("progress", result_type=JobProgress)
    except (RPCError, WorkflowQueryFailedError, TimeoutError):
        return job  # a workflow without the query, or no worker polling it now
    return job.model_copy(update={"progress": found})


def _subjects(request: Request, jobs: list[Job]) -> None:
    """Each patient/study the answer names is one PHI access in the audit trail."""
    request.state.audit_subjects = [
        {"patient_id": j.keys.get("PatientID", ""), "study_instance_uid": study}
        for j in jobs
        if (study := j.keys.get("StudyInstanceUID", "")) or j.keys.get("PatientID")
    ]


@router.get("", response_model=JobPage, dependencies=[audited("jobs")])
async def list_jobs(
    request: Request,
    services: ServicesDep,
    job_type: Annotated[str | None, Query(alias="type", max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    study: Annotated[str | None, Query(alias="StudyInstanceUID", max_length=64)] = None,
    patient: Annotated[str | None, Query(alias="PatientID", max_length=64)] = None,
    accession: Annotated[str | None, Query(alias="AccessionNumber", max_length=16)] = None,
    modality: Annotated[str | None, Query(alias="Modality", max_length=16)] = None,
    calling_ae: Annotated[str | None, Query(alias="CallingAE", max_length=16)] = None,
    schedule: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    page: Annotated[str | None, Query(max_length=4096)] = None,
    progress: bool = False,
) -> JobPage:
    """Newest first, a page at a time; `progress=true` asks each running job for its
    progress (one query each, at most 2 s)."""
    keys = {
        "StudyInstanceUID": study,
        "PatientID": patient,
        "AccessionNumber": accession,
        "Modality": modality,
    }
    query = _query(
        job_type, status, keys | {"CallingAE": calling_ae, "TemporalScheduledById": schedule}
    )
    try:
        token = base64.urlsafe_b64decode(page) if page else None
    except (binascii.Error, ValueError):
        raise HTTPException(422, "page: not a token this API gave") from None
    client = await services.temporal()
    listing = client.list_workflows(query or None, page_size=limit, next_page_token=token)
    await listing.fetch_next_page()
    counted = await client.count_workflows(query or None)
    following = listing.next_page_token
    jobs = [_job(e) for e in listing.current_page or []][:limit]
    if progress:
        jobs = list(await asyncio.gather(*(_progress(client, j) for j in jobs)))
    _subjects(request, jobs)
    return JobPage(
        jobs=jobs,
        total=counted.count,
        next=base64.urlsafe_b64encode(following).decode() if following else None,
    )


@router.get("/{workflow_id}", response_model=Job, dependencies=[audited("jobs")])
async def get_job(workflow_id: str, request: Request, services: ServicesDep) -> Job:
    """One job, with its progress while it runs, its result once it completed."""
    client = await services.temporal()
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
        job = await _progress(client, _job(described))
        if described.status is WorkflowExecutionStatus.COMPLETED:
            job.result = await handle.result(follow_runs=False)
    except RPCError as exc:
        raise _not_found(exc, workflow_id) from exc
    _subjects(request, [job])
    return job


def _not_found(exc: RPCError, workflow_id: str) -> HTTPException:
    if exc.status is RPCStatusCode.NOT_FOUND:
        return HTTPException(404, f"no job {workflow_id}")
    return HTTPException(502, f"Temporal: {exc.message}")


async def _describe(services: Services, workflow_id: str) -> WorkflowExecutionDescription:
    client = await services.temporal()
    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        raise _not_found(exc, workflow_id) from exc


async def _stop(request: Request, services: Services, workflow_id: str, how: str) -> Job:
    client = await services.temporal()
    handle = client.get_workflow_handle(workflow_id)
    described = await _describe(services, workflow_id)
    if described.status is not WorkflowExecutionStatus.RUNNING:
        raise HTTPException(409, f"job {workflow_id} is not running")
    try:
        if how == "cancel":
            await handle.cancel()
        else:
            await handle.terminate(
                reason=f"terminated through the jobs API by {request.state.caller.name}"
            )
        audit(request, f"job-{how}", "success", f"{described.workflow_type} {workflow_id}")
        return _job(await handle.describe())
    except RPCError as exc:
        raise _not_found(exc, workflow_id) from exc


@router.post("/{workflow_id}/cancel", response_model=Job)
async def cancel_job(workflow_id: str, request: Request, services: ServicesDep) -> Job:
    """Ask the workflow to stop (it may clean up first); 409 when it is not running."""
    return await _stop(request, services, workflow_id, "cancel")


@router.post("/{workflow_id}/terminate", response_model=Job)
async def terminate_job(workflow_id: str, request: Request, services: ServicesDep) -> Job:
    """Stop it at once, no clean-up; 409 when it is not running."""
    return await _stop(request, services, workflow_id, "terminate")


@router.post("/{workflow_id}/retry", response_model=Job)
async def retry_job(workflow_id: str, request: Request, services: ServicesDep) -> Job:
    """Resubmit a job that failed, was cancelled, terminated or timed out: a new run under
    the same workflow id, type, task queue, input and business keys (409 otherwise)."""
    described = await _describe(services, workflow_id)
    if described.status not in RETRYABLE:
        state = STATUS_NAMES.get(described.status, "?") if described.status else "?"
        raise HTTPException(409, f"job {workflow_id} is {state}; only an ended job that did not "
                            "complete can be retried")  # fmt: skip
    client = await services.temporal()
    handle = client.get_workflow_handle(workflow_id, run_id=described.run_id)
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    # The input as Temporal holds it, decoded without types and encoded again: the same
    # JSON, so the new run gets exactly what the failed one got.
    args = await client.data_converter.decode(started.input.payloads)
    try:
        new = await client.start_workflow(
            described.workflow_type,
            args=args,
            id=workflow_id,
            task_queue=described.task_queue,
            search_attributes=described.typed_search_attributes,
        )
    except RPCError as exc:
        raise HTTPException(502, f"Temporal: {exc.message}") from exc
    audit(request, "job-retry", "success", f"{described.workflow_type} {workflow_id}")
    return _job(await new.describe())
