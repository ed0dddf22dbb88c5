"""On-demand fixity check: `POST /api/storage/fixity` starts a FixityWorkflow over the whole
archive or one study (the `fixity` schedule does the whole archive every
`PACS_LIFECYCLE__FIXITY_INTERVAL_SECONDS`); its result and `pacs.instance.damaged` events
name every archived object that no longer reads back as stored. Admin only, audited."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.deps import CallerDep, ServicesDep, audit, require
from infra.auth.permissions import Permission
from schemas.lifecycle import FixityInput
from workflows.fixity import FixityWorkflow, fixity_workflow_id
from workflows.prefetch import STUDY_UID

router = APIRouter(prefix="/api/storage", tags=["storage"])


class FixityRequest(BaseModel):
    """Which archived objects to re-read: one study's, or (empty) all."""

    study_instance_uid: Annotated[str, Field(max_length=64, pattern=r"^([0-9]+(\.[0-9]+)*)?$")] = ""
    page_size: int = Field(default=200, ge=1, le=5000)  # objects per activity call


class FixityAccepted(BaseModel):
    workflow_id: str
    status_url: str


@router.post(
    "/fixity",
    status_code=202,
    response_model=FixityAccepted,
    dependencies=[require(Permission.ADMIN)],
)
async def check_fixity(
    body: FixityRequest, request: Request, services: ServicesDep, caller: CallerDep
) -> FixityAccepted:
    study = body.study_instance_uid
    workflow_id = fixity_workflow_id(study, uuid.uuid4().hex[:12])
    client = await services.temporal()
    pairs = [SearchAttributePair(STUDY_UID, study)] if study else []
    await client.start_workflow(
        FixityWorkflow.run,
        FixityInput(study_instance_uid=study, page_size=body.page_size),
        id=workflow_id,
        task_queue=services.settings.temporal.ingest_task_queue,
        search_attributes=TypedSearchAttributes(pairs),
    )
    audit(request, "fixity", "success", workflow_id, caller, study_instance_uid=study)
    return FixityAccepted(workflow_id=workflow_id, status_url=f"/api/jobs/{workflow_id}")
