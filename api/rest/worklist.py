"""Modality Worklist admin API: schedule, reschedule and cancel procedures.

Every change is an event on the log, answered only after the broker acknowledged it; the
worklist read model (and so the MWL C-FIND SCP) follows from the log. A write waits briefly
until the read model shows it, so a client that reads right after writing sees its change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from pydicom.uid import generate_uid

from api.deps import (
    Services,
    ServicesDep,
    WorklistDep,
    audited,
    publish_visible,
    require,
    worklist_of,
)
from infra.auth.permissions import Permission
from schemas.events import (
    WorklistItemCancelled,
    WorklistItemScheduled,
    WorklistItemUpdated,
)
from schemas.worklist import (
    StepStatus,
    WorklistItem,
    WorklistItemBody,
    WorklistItemView,
    WorklistQuery,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/worklist", tags=["worklist"])


async def _publish(
    services: Services,
    event: WorklistItemScheduled | WorklistItemUpdated | WorklistItemCancelled,
) -> None:
    worklist_of(services)  # 503 before anything is published when the read model is not here
    await publish_visible(services, event)


async def _existing(services: Services, item_id: str) -> WorklistItemView:
    item = await asyncio.to_thread(worklist_of(services).get, item_id)
    if item is None:
        raise HTTPException(404, f"no worklist item {item_id}")
    return item


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


@router.post(
    "",
    response_model=WorklistItem,
    status_code=201,
    dependencies=[require(Permission.WORKLIST_WRITE)],
)
async def schedule_item(
    body: WorklistItemBody, services: ServicesDep, request: Request
) -> WorklistItem:
    """Schedule a procedure; a StudyInstanceUID is generated when the body has none."""
    worklist_of(services)
    data = body.model_dump()
    data["study_instance_uid"] = body.study_instance_uid or str(generate_uid())
    item = WorklistItem(**data, item_id=uuid.uuid4().hex)
    await _publish(
        services,
        WorklistItemScheduled(
            item=item,
            study_instance_uid=item.study_instance_uid,
            patient_id=item.patient_id,
            client=_client(request),
        ),
    )
    return item


@router.put(
    "/{item_id}", response_model=WorklistItem, dependencies=[require(Permission.WORKLIST_WRITE)]
)
async def update_item(
    item_id: str, body: WorklistItemBody, services: ServicesDep, request: Request
) -> WorklistItem:
    """Replace a scheduled item; it keeps its StudyInstanceUID unless the body sets one."""
    current = await _existing(services, item_id)
    if current.status == "cancelled":
        raise HTTPException(409, f"worklist item {item_id} is cancelled")
    data = body.model_dump()
    data["study_instance_uid"] = body.study_instance_uid or current.study_instance_uid
    item = WorklistItem(**data, item_id=item_id)
    await _publish(
        services,
        WorklistItemUpdated(
            item=item,
            study_instance_uid=item.study_instance_uid,
            patient_id=item.patient_id,
            client=_client(request),
        ),
    )
    return item


@router.delete(
    "/{item_id}", response_model=WorklistItem, dependencies=[require(Permission.WORKLIST_WRITE)]
)
async def cancel_item(
    item_id: str,
    services: ServicesDep,
    request: Request,
    reason: Annotated[str, Query(max_length=200)] = "",
) -> WorklistItem:
    """Cancel a scheduled item; modalities no longer find it. Cancelling twice is a no-op."""
    current = await _existing(services, item_id)
    if current.status == "cancelled":
        return current
    await _publish(
        services,
        WorklistItemCancelled(
            item_id=item_id,
            study_instance_uid=current.study_instance_uid,
            patient_id=current.patient_id,
            reason=reason,
            client=_client(request),
        ),
    )
    return current.model_copy(update={"status": "cancelled"})


@router.get(
    "/{item_id}",
    response_model=WorklistItemView,
    dependencies=[require(Permission.WORKLIST_READ), audited("worklist")],
)
async def get_item(item_id: str, request: Request, services: ServicesDep) -> WorklistItemView:
    """One item, cancelled or not, with the status of its step (SCHEDULED, STARTED,
    COMPLETED or DISCONTINUED) as the MPPS referencing it make it."""
    item = await _existing(services, item_id)
    request.state.audit_subjects = [_subject(item)]
    return item


@router.get(
    "",
    response_model=list[WorklistItemView],
    dependencies=[require(Permission.WORKLIST_READ), audited("worklist")],
)
async def list_items(
    request: Request,
    services: ServicesDep,
    worklist: WorklistDep,
    station_ae_title: str | None = None,
    modality: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    patient_id: str | None = None,
    accession_number: str | None = None,
    study_instance_uid: str | None = None,
    step_id: str | None = None,
    include_cancelled: bool = False,
    step_status: StepStatus | None = None,
    include_finished: bool = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[WorklistItemView]:
    """Items by scheduled start, filtered by exact values and a date range (inclusive).

    Items whose step is COMPLETED or DISCONTINUED are left out once that is older than
    `PACS_DICOM__WORKLIST_KEEP_FINISHED_HOURS` (0: at once); `include_finished=true` lists
    them all, `step_status=` lists only items in that status, however old.

    The MWL C-FIND SCP uses this with the exact keys of a query, then applies the DICOM
    matching rules (wildcards, case-insensitive names, sequences) itself.
    """
    keep = dt.timedelta(hours=services.settings.dicom.worklist_keep_finished_hours)
    query = WorklistQuery(
        station_ae_title=station_ae_title,
        modality=modality,
        date_from=date_from,
        date_to=date_to,
        patient_id=patient_id,
        accession_number=accession_number,
        study_instance_uid=study_instance_uid,
        step_id=step_id,
        include_cancelled=include_cancelled,
        step_status=step_status,
        include_finished=include_finished,
        finished_since=dt.datetime.now(dt.UTC) - keep if keep else None,
        limit=limit,
    )
    items = await asyncio.to_thread(worklist.find, query)
    request.state.audit_subjects = [_subject(item) for item in items]
    return items


def _subject(item: WorklistItemView) -> dict[str, str]:
    return {"patient_id": item.patient_id, "study_instance_uid": item.study_instance_uid}
