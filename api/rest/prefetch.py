"""On-demand prefetch: POST /api/prefetch starts (or finds running) the PrefetchWorkflow
for a patient's priors; follow it in the jobs API (`status_url`). Pulling studies into the
archive is storing them, so it needs studies:store; each request is audited."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import CallerDep, ServicesDep, audit, require
from api.rest.prefetch_rules import check_sources
from infra.auth.permissions import Permission
from schemas.prefetch import PrefetchInput, PrefetchRequest, prefetch_workflow_id
from workflows.prefetch import PrefetchWorkflow, search_attributes

router = APIRouter(prefix="/api/prefetch", tags=["prefetch"])


class PrefetchAccepted(BaseModel):
    workflow_id: str
    # True: a prefetch of this patient and accession was already running; this is it.
    deduplicated: bool
    status_url: str


@router.post(
    "",
    status_code=202,
    response_model=PrefetchAccepted,
    dependencies=[require(Permission.STUDIES_STORE)],
)
async def prefetch(
    body: PrefetchRequest, request: Request, services: ServicesDep, caller: CallerDep
) -> PrefetchAccepted:
    check_sources(services, body)
    job = PrefetchInput(**body.model_dump(), requested_by=caller.name)
    workflow_id = prefetch_workflow_id(job.patient_id, job.accession_number)
    client = await services.temporal()
    deduplicated = False
    try:
        await client.start_workflow(
            PrefetchWorkflow.run,
            job,
            id=workflow_id,
            task_queue=services.settings.temporal.ingest_task_queue,
            search_attributes=search_attributes(job),
        )
    except WorkflowAlreadyStartedError:
        deduplicated = True
    detail = f"{workflow_id} from {','.join(job.sources)} via {job.via}"
    audit(request, "prefetch", "success", detail, patient_id=job.patient_id)
    return PrefetchAccepted(
        workflow_id=workflow_id, deduplicated=deduplicated, status_url=f"/api/jobs/{workflow_id}"
    )
