"""De-identification jobs: start one, follow it, download its zip, read its map (admin).

A job is a DeidentificationWorkflow in Temporal (`deidentify:<job id>`); its status is read
from Temporal itself, so it is what the Temporal UI shows. The copy's files and the
re-identification map live under the job's private prefix of the archive bucket.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import StreamingResponse
from minio.error import S3Error
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import FailureError, TemporalError
from temporalio.service import RPCError, RPCStatusCode

from activities.deidentify import map_key, zip_key
from api.deps import CallerDep, ServicesDep, audit, catalog_of, nodes_of, require
from infra.auth.permissions import Permission
from infra.storage.archive import get_bytes, is_not_found
from schemas.catalog import InstanceQuery
from schemas.deidentify import (
    JOB_ID_PATTERN,
    DeidentificationInput,
    DeidentificationResult,
    DeidentifyAccepted,
    DeidentifyBody,
    DeidentifyStatus,
    ReidentificationMap,
)
from workflows.deidentify import (
    DeidentificationWorkflow,
    deidentification_workflow_id,
    search_attributes,
)

router = APIRouter(prefix="/api/deidentify", tags=["de-identification"])

JobPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="the job id POST answered")]
ResultHandle = WorkflowHandle[DeidentificationWorkflow, DeidentificationResult]


@router.post(
    "",
    response_model=DeidentifyAccepted,
    status_code=202,
    dependencies=[require(Permission.DEIDENTIFY)],
)
async def start_deidentification(
    body: DeidentifyBody, request: Request, services: ServicesDep, caller: CallerDep
) -> DeidentifyAccepted:
    """Start a de-identified copy of a stored study (PS3.15 Annex E basic profile and the
    chosen options), to the archive as a new study, to a registered node, or as a zip."""
    if body.target not in ("archive", "zip") and nodes_of(services).node(body.target) is None:
        raise HTTPException(404, f"no node {body.target}: the target is archive, zip or a node")
    query = InstanceQuery(study_instance_uids=[body.study_instance_uid])
    if not await asyncio.to_thread(catalog_of(services).instances, query):
        raise HTTPException(404, f"no stored study {body.study_instance_uid}")
    job = DeidentificationInput(
        job_id=uuid.uuid4().hex,
        study_instance_uid=body.study_instance_uid,
        options=body.options,
        target=body.target,
        requested_by=caller.name,
    )
    workflow_id = deidentification_workflow_id(job.job_id)
    client = await services.temporal()
    await client.start_workflow(
        DeidentificationWorkflow.run,
        job,
        id=workflow_id,
        task_queue=services.settings.temporal.ingest_task_queue,
        search_attributes=search_attributes(job),
    )
    detail = f"job {job.job_id} to {job.target}, options {','.join(job.options.names())}"
    audit(request, "de-identify", "success", detail, study_instance_uid=job.study_instance_uid)
    return DeidentifyAccepted(
        job_id=job.job_id, workflow_id=workflow_id, status_url=f"/api/deidentify/{job.job_id}"
    )


async def _handle(services: ServicesDep, job_id: str) -> ResultHandle:
    client = await services.temporal()
    return client.get_workflow_handle_for(
        DeidentificationWorkflow.run, deidentification_workflow_id(job_id)
    )


@router.get(
    "/{job_id}",
    response_model=DeidentifyStatus,
    dependencies=[require(Permission.DEIDENTIFIED_READ)],
)
async def deidentification_status(job_id: JobPath, services: ServicesDep) -> DeidentifyStatus:
    """Running, completed (with the copy's Study Instance UID) or failed (with the reason)."""
    handle = await _handle(services, job_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no de-identification job {job_id}") from exc
        raise
    status = DeidentifyStatus(job_id=job_id, workflow_id=handle.id, state="running")
    if description.status == WorkflowExecutionStatus.RUNNING:
        return status
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        status.state = "failed"
        status.error = _root_cause(exc)
        return status
    status.state = "completed"
    status.target = result.target
    status.study_instance_uid = result.study_instance_uid
    status.instance_count = result.instance_count
    status.delivered = result.delivered
    if result.zip_available:
        status.zip_url = f"/api/deidentify/{job_id}/zip"
    return status


def _root_cause(exc: WorkflowFailureError) -> str:
    """The innermost failure's message: an activity's reason, not "activity task failed"."""
    cause: BaseException = exc
    while isinstance(cause, TemporalError) and cause.cause is not None:
        cause = cause.cause
    return cause.message if isinstance(cause, FailureError) else str(cause)


@router.get(
    "/{job_id}/zip",
    response_class=StreamingResponse,
    dependencies=[require(Permission.DEIDENTIFIED_READ)],
    responses={200: {"content": {"application/zip": {}}}},
)
async def download_zip(
    job_id: JobPath, request: Request, services: ServicesDep
) -> StreamingResponse:
    """The de-identified copy of a job whose target was `zip`."""
    try:
        response = await asyncio.to_thread(
            services.archive.client.get_object, services.archive.bucket, zip_key(job_id)
        )
    except S3Error as exc:
        if is_not_found(exc):
            raise HTTPException(
                404, f"job {job_id} has no zip (not done, or not a zip job)"
            ) from exc
        raise

    def chunks() -> Iterator[bytes]:
        try:
            yield from response.stream(1024 * 1024)
        finally:
            response.close()
            response.release_conn()

    audit(request, "de-identified-zip", "success", f"job {job_id}")
    return StreamingResponse(
        chunks(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="deidentified-{job_id}.zip"'},
    )


@router.get(
    "/{job_id}/map",
    response_model=ReidentificationMap,
    dependencies=[require(Permission.REIDENTIFY)],
)
async def reidentification_map(
    job_id: JobPath, request: Request, services: ServicesDep
) -> ReidentificationMap:
    """Original ↔ de-identified identifiers of a job: who the copy's patient is."""
    body = await asyncio.to_thread(
        get_bytes, services.archive.client, services.archive.bucket, map_key(job_id)
    )
    if body is None:
        raise HTTPException(404, f"job {job_id} has no map (not done, or no such job)")
    reid = ReidentificationMap.model_validate_json(body)
    audit(
        request,
        "re-identify",
        "success",
        f"job {job_id}",
        patient_id=reid.patient_id.original,
        study_instance_uid=reid.study_instance_uid.original,
    )
    return reid
