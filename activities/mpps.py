"""MPPS side effects: find the worklist item a step performed, check its instances arrived.

Both ask the API process, which owns the read models.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity

from infra.internal_api import InternalApi
from schemas.catalog import InstanceQuery
from schemas.mpps import InstanceCheck, InstanceCheckResult, WorklistLinkRequest, WorklistLinkResult
from schemas.worklist import WorklistQuery

log = logging.getLogger(__name__)


class MppsActivities:
    """Built once per worker with its client of the API."""

    def __init__(self, api: InternalApi) -> None:
        self.api = api

    @activity.defn
    async def find_worklist_item(self, request: WorklistLinkRequest) -> WorklistLinkResult:
        """The first worklist item matching a scheduled step, by the strongest key first:
        StudyInstanceUID, then AccessionNumber, then ScheduledProcedureStepID."""
        for step in request.scheduled_steps:
            keys = [
                ("study_instance_uid", step.study_instance_uid),
                ("accession_number", step.accession_number),
                ("step_id", step.scheduled_procedure_step_id),
            ]
            for name, value in keys:
                if not value:
                    continue
                # Every item, whatever its step's state: a step discontinued and
                # performed again is linked to the same item.
                query = WorklistQuery.model_validate(
                    {name: value, "include_cancelled": True, "include_finished": True}
                )
                items = await asyncio.to_thread(self.api.worklist, query)
                if items:
                    return WorklistLinkResult(item_id=items[0].item_id, matched_by=name)
        return WorklistLinkResult()

    @activity.defn
    async def check_instances(self, request: InstanceCheck) -> InstanceCheckResult:
        """Which of these SOP instances the catalog holds."""
        found = await asyncio.to_thread(
            self.api.instances, InstanceQuery(sop_instance_uids=request.sop_instance_uids)
        )
        return InstanceCheckResult(found=sorted({i.sop_instance_uid for i in found}))
