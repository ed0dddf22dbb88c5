"""Modality Performed Procedure Steps as their workflows hold them."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ServicesDep, audited, require
from infra.auth.permissions import Permission
from schemas.mpps import MppsView
from workflows.mpps import MppsWorkflow, workflow_id

router = APIRouter(
    prefix="/api/mpps", tags=["mpps"], dependencies=[require(Permission.MPPS_READ), audited("mpps")]
)


@router.get("/{sop_instance_uid}", response_model=MppsView)
async def get_mpps(sop_instance_uid: str, services: ServicesDep) -> MppsView:
    """State, worklist link and instance check of one MPPS (strongly consistent)."""
    try:
        client = await services.temporal()
        handle = client.get_workflow_handle(workflow_id(sop_instance_uid))
        view: MppsView = await handle.query(MppsWorkflow.view)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no MPPS {sop_instance_uid}") from exc
        raise HTTPException(503, f"workflow engine unavailable: {exc.message}") from exc
    return view
