"""MPPS SCP: N-CREATE and N-SET on Modality Performed Procedure Step (1.2.840.10008.3.1.2.3.3).

Each MPPS instance's state lives in its own MppsWorkflow, so every N-SET is checked against
the latest state wherever the previous message was handled (strongly consistent, durable).
"""

from __future__ import annotations

import logging
from typing import Any

from pydicom.dataset import Dataset
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from infra.dicom.statuses import (
    DUPLICATE_SOP_INSTANCE,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    SUCCESS,
    status_dataset,
)
from ingest.dimse.temporal_bridge import TemporalBridge
from schemas.mpps import (
    MppsAttributes,
    MppsSet,
    MppsSetResult,
    MppsStart,
    MppsState,
    PerformedSeries,
    ScheduledStepRef,
)
from workflows.mpps import MppsWorkflow, search_attributes, workflow_id

log = logging.getLogger(__name__)

_STATUSES = {"IN PROGRESS", "COMPLETED", "DISCONTINUED"}
_SERIES_REFS = ("ReferencedImageSequence", "ReferencedNonImageCompositeSOPInstanceSequence")


def _text(ds: Dataset, keyword: str) -> str | None:
    if keyword not in ds:
        return None
    value = ds[keyword].value
    return "" if value is None else str(value).strip()


def mpps_attributes(ds: Dataset) -> MppsAttributes:
    """The attributes we keep, from an N-CREATE attribute list or N-SET modification list.

    Raises ValueError when PerformedProcedureStepStatus has a value PS3.3 does not allow.
    """
    status = _text(ds, "PerformedProcedureStepStatus")
    if status is not None and status not in _STATUSES:
        raise ValueError(
            f"PerformedProcedureStepStatus {status!r} is not one of {sorted(_STATUSES)}"
        )
    attrs = MppsAttributes(
        status=status or None,
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        modality=_text(ds, "Modality"),
        performed_station_ae_title=_text(ds, "PerformedStationAETitle"),
        performed_procedure_step_id=_text(ds, "PerformedProcedureStepID"),
        description=_text(ds, "PerformedProcedureStepDescription"),
        start_date=_text(ds, "PerformedProcedureStepStartDate"),
        start_time=_text(ds, "PerformedProcedureStepStartTime"),
        end_date=_text(ds, "PerformedProcedureStepEndDate"),
        end_time=_text(ds, "PerformedProcedureStepEndTime"),
    )
    reasons = ds.get("PerformedProcedureStepDiscontinuationReasonCodeSequence")
    if reasons is not None:
        attrs.discontinuation_reason = "; ".join(
            str(item.get("CodeMeaning", item.get("CodeValue", ""))) for item in reasons
        )
    if "ScheduledStepAttributesSequence" in ds:
        attrs.scheduled_steps = [
            ScheduledStepRef(
                study_instance_uid=_text(item, "StudyInstanceUID") or "",
                accession_number=_text(item, "AccessionNumber") or "",
                requested_procedure_id=_text(item, "RequestedProcedureID") or "",
                scheduled_procedure_step_id=_text(item, "ScheduledProcedureStepID") or "",
            )
            for item in ds.ScheduledStepAttributesSequence
        ]
    if "PerformedSeriesSequence" in ds:
        attrs.performed_series = [
            PerformedSeries(
                series_instance_uid=_text(item, "SeriesInstanceUID") or "",
                sop_instance_uids=[
                    str(ref.ReferencedSOPInstanceUID)
                    for name in _SERIES_REFS
                    for ref in item.get(name, [])
                    if "ReferencedSOPInstanceUID" in ref
                ],
            )
            for item in ds.PerformedSeriesSequence
        ]
    return attrs


class MppsHandlers:
    """EVT_N_CREATE and EVT_N_SET for MPPS; other SOP classes are refused."""

    def __init__(self, bridge: TemporalBridge, task_queue: str, verify_timeout: float) -> None:
        self.bridge = bridge
        self.task_queue = task_queue
        self.verify_timeout = verify_timeout

    def n_create(self, event: Any) -> tuple[Dataset, Dataset | None]:
        uid = event.request.AffectedSOPInstanceUID
        calling_ae = event.assoc.requestor.ae_title.strip()
        if not uid:
            return status_dataset(MISSING_ATTRIBUTE, "Affected SOP Instance UID is required"), None
        try:
            dataset: Dataset = event.attribute_list
            attrs = mpps_attributes(dataset)
        except Exception as exc:  # noqa: BLE001 - the peer's dataset is at fault
            return status_dataset(INVALID_ATTRIBUTE_VALUE, str(exc)), None
        if attrs.status != "IN PROGRESS":
            reason = "PerformedProcedureStepStatus must be IN PROGRESS on N-CREATE"
            return status_dataset(INVALID_ATTRIBUTE_VALUE, reason), None
        state = MppsState.model_validate(
            {
                **attrs.model_dump(exclude_none=True),
                "sop_instance_uid": str(uid),
                "calling_ae": calling_ae,
            }
        )
        start = MppsStart(state=state, verify_timeout_seconds=self.verify_timeout)

        async def create(client: Client) -> None:
            await client.start_workflow(
                MppsWorkflow.run,
                start,
                id=workflow_id(str(uid)),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=TypedSearchAttributes(search_attributes(state)),
            )

        try:
            self.bridge.call(create)
        except WorkflowAlreadyStartedError:
            log.warning("MPPS N-CREATE from %s for existing %s", calling_ae, uid)
            return status_dataset(DUPLICATE_SOP_INSTANCE, "this MPPS instance already exists"), None
        except Exception as exc:  # noqa: BLE001 - any failure: the peer gets a status
            log.error("MPPS N-CREATE %s could not be recorded: %r", uid, exc)
            return status_dataset(PROCESSING_FAILURE, "MPPS could not be recorded now"), None
        log.info("MPPS %s created by %s", uid, calling_ae)
        return status_dataset(SUCCESS), dataset

    def n_set(self, event: Any) -> tuple[Dataset, Dataset | None]:
        uid = str(event.request.RequestedSOPInstanceUID)
        try:
            modifications: Dataset = event.modification_list
            attrs = mpps_attributes(modifications)
        except Exception as exc:  # noqa: BLE001 - the peer's dataset is at fault
            return status_dataset(INVALID_ATTRIBUTE_VALUE, str(exc)), None

        async def update(client: Client) -> MppsSetResult:
            handle = client.get_workflow_handle(workflow_id(uid))
            try:
                return await handle.execute_update(MppsWorkflow.n_set, MppsSet(attributes=attrs))
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
            # Not running: either never created, or closed after reaching a final state.
            try:
                description = await handle.describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return MppsSetResult(status=NO_SUCH_OBJECT_INSTANCE, reason="no such MPPS")
                raise
            if description.status == WorkflowExecutionStatus.COMPLETED:
                return MppsSetResult(
                    status=PROCESSING_FAILURE,
                    reason="Performed Procedure Step is final; it may not be updated",
                )
            return MppsSetResult(status=PROCESSING_FAILURE, reason="MPPS is not available")

        try:
            result = self.bridge.call(update)
        except Exception as exc:  # noqa: BLE001 - any failure: the peer gets a status
            log.error("MPPS N-SET %s could not be applied: %r", uid, exc)
            return status_dataset(PROCESSING_FAILURE, "MPPS could not be updated now"), None
        if result.status != SUCCESS:
            log.warning("MPPS N-SET %s refused: 0x%04X %s", uid, result.status, result.reason)
            return status_dataset(result.status, result.reason), None
        return status_dataset(SUCCESS), modifications
