"""Deleting studies, series and instances: `DELETE /api/studies/{study}[/series/{series}
[/instances/{instance}]]` (permission `studies:delete`, audited), answered 202.

In this order, so that no step's failure can lose what is still listed:
1. a tombstone in the archive bucket, which makes a copy arriving later a new arrival;
2. the DeletionWorkflow, which waits out the grace period, then purges what the catalog
   no longer lists (so if step 3 never happens, it purges nothing);
3. the `pacs.instances.deleted` event, waited for until the read models applied it: the
   study is gone from QIDO, C-FIND, WADO and the viewer when the answer comes.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from api.deps import CallerDep, ServicesDep, audited, catalog_of, publish_visible, require
from api.rest.studies import UidPath
from infra.auth.permissions import Permission
from infra.storage.deletions import Deletions
from schemas.events import InstancesDeleted
from schemas.lifecycle import DeletionScope, PurgeInput
from workflows.deletion import DeletionWorkflow, deletion_workflow_id, search_attributes

router = APIRouter(
    prefix="/api", tags=["studies"], dependencies=[require(Permission.STUDIES_DELETE)]
)
Reason = Annotated[str, Query(max_length=1024)]


class DeletionAccepted(BaseModel):
    deletion_id: str
    instances: int  # how many the deletion covers
    purge_after: datetime  # when their bytes are removed from storage
    workflow_id: str
    status_url: str


async def _delete(
    scope: DeletionScope, reason: str, services: ServicesDep, caller: CallerDep
) -> DeletionAccepted:
    catalog = catalog_of(services)
    covered = await asyncio.to_thread(catalog.instances, scope.instance_query())
    if not covered:
        raise HTTPException(404, f"no {scope.label} is stored")
    patient = await asyncio.to_thread(catalog.patient_id_of, scope.study_instance_uid)
    deletion_id = uuid.uuid4().hex
    settings = services.settings
    now = datetime.now().astimezone()
    purge_after = now + timedelta(seconds=settings.lifecycle.delete_grace_seconds)
    start = PurgeInput(
        deletion_id=deletion_id, scope=scope, deleted_at=now, purge_after=purge_after
    )
    await asyncio.to_thread(Deletions(services.archive).put_tombstone, deletion_id, scope)
    client = await services.temporal()
    workflow_id = deletion_workflow_id(deletion_id)
    await client.start_workflow(
        DeletionWorkflow.run,
        start,
        id=workflow_id,
        task_queue=settings.temporal.ingest_task_queue,
        search_attributes=search_attributes(start, patient),
    )
    event = InstancesDeleted(
        deletion_id=deletion_id,
        scope=scope,
        patient_id=patient,
        reason=reason,
        actor=caller.name,
        purge_after=purge_after,
    )
    await publish_visible(services, event)
    return DeletionAccepted(
        deletion_id=deletion_id,
        instances=len(covered),
        purge_after=purge_after,
        workflow_id=workflow_id,
        status_url=f"/api/jobs/{workflow_id}",
    )


@router.delete(
    "/studies/{study}",
    status_code=202,
    response_model=DeletionAccepted,
    dependencies=[audited("delete")],
)
async def delete_study(
    study: UidPath, services: ServicesDep, caller: CallerDep, reason: Reason = ""
) -> DeletionAccepted:
    return await _delete(DeletionScope(study_instance_uid=study), reason, services, caller)


@router.delete(
    "/studies/{study}/series/{series}",
    status_code=202,
    response_model=DeletionAccepted,
    dependencies=[audited("delete")],
)
async def delete_series(
    study: UidPath, series: UidPath, services: ServicesDep, caller: CallerDep, reason: Reason = ""
) -> DeletionAccepted:
    scope = DeletionScope(study_instance_uid=study, series_instance_uid=series)
    return await _delete(scope, reason, services, caller)


@router.delete(
    "/studies/{study}/series/{series}/instances/{instance}",
    status_code=202,
    response_model=DeletionAccepted,
    dependencies=[audited("delete")],
)
async def delete_instance(
    study: UidPath,
    series: UidPath,
    instance: UidPath,
    services: ServicesDep,
    caller: CallerDep,
    reason: Reason = "",
) -> DeletionAccepted:
    scope = DeletionScope(
        study_instance_uid=study, series_instance_uid=series, sop_instance_uids=[instance]
    )
    return await _delete(scope, reason, services, caller)
