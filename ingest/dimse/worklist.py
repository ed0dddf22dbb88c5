"""Modality Worklist C-FIND SCP (1.2.840.10008.5.1.4.31).

The worklist read model lives in the API process (which owns ClickHouse), so the gateway
asks it over HTTP with the exact-value keys of the query, then applies the DICOM matching
rules itself (infra/readmodels/matching.py) and returns the requested keys of each match.

ScheduledProcedureStepStatus is the item's real state (SCHEDULED, STARTED, COMPLETED,
DISCONTINUED, from the MPPS that reference it). Without that key, or with it universal, the
read model leaves out finished items (after the keep window, `PACS_DICOM__WORKLIST_KEEP_
FINISHED_HOURS`); a single value asks the read model for items in exactly that state.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset

from infra.audit_recorder import AuditRecorder, dimse_entry
from infra.dicom.statuses import CANCELLED, PENDING, SUCCESS, UNABLE_TO_PROCESS
from infra.internal_api import ApiUnavailable, InternalApi
from infra.readmodels.matching import is_universal, matches, response
from ingest.dimse.access import user_name
from schemas.worklist import StepStatus, WorklistItemView, WorklistQuery

log = logging.getLogger(__name__)

_STEP_STATUSES: dict[str, StepStatus] = {
    "SCHEDULED": "SCHEDULED",
    "STARTED": "STARTED",
    "COMPLETED": "COMPLETED",
    "DISCONTINUED": "DISCONTINUED",
}


def _da(value: dt.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def item_dataset(item: WorklistItemView) -> Dataset:
    """A worklist item as the MWL information model describes it (PS3.4 K.6.1.2)."""
    step = item.scheduled_step
    sps = Dataset()
    sps.ScheduledStationAETitle = step.station_ae_title
    sps.ScheduledStationName = step.station_name
    sps.ScheduledProcedureStepLocation = step.location
    sps.ScheduledProcedureStepStartDate = _da(step.start_date)
    sps.ScheduledProcedureStepStartTime = (
        step.start_time.strftime("%H%M%S") if step.start_time else ""
    )
    sps.Modality = step.modality
    sps.ScheduledPerformingPhysicianName = step.performing_physician
    sps.ScheduledProcedureStepDescription = step.description
    sps.ScheduledProcedureStepID = step.step_id
    sps.ScheduledProcedureStepStatus = item.step_status
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = item.patient_name
    ds.PatientID = item.patient_id
    ds.PatientBirthDate = _da(item.patient_birth_date)
    ds.PatientSex = item.patient_sex
    ds.AccessionNumber = item.accession_number
    ds.ReferringPhysicianName = item.referring_physician
    ds.StudyInstanceUID = item.study_instance_uid
    ds.RequestedProcedureID = item.requested_procedure_id
    ds.RequestedProcedureDescription = item.requested_procedure_description
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def _exact(identifier: Dataset, keyword: str) -> str | None:
    """A key's value when it is a plain single value the read model can filter on."""
    if keyword not in identifier:
        return None
    element = identifier[keyword]
    if is_universal(element) or element.VM != 1:
        return None
    value = str(element.value).strip()
    return None if "*" in value or "?" in value else value


def _date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def coarse_query(identifier: Dataset) -> WorklistQuery:
    """Filters the read model can apply; anything looser is matched after fetching."""
    query = WorklistQuery(
        patient_id=_exact(identifier, "PatientID"),
        accession_number=_exact(identifier, "AccessionNumber"),
        study_instance_uid=_exact(identifier, "StudyInstanceUID"),
    )
    steps = identifier.get("ScheduledProcedureStepSequence")
    if steps:
        step = steps[0]
        query.station_ae_title = _exact(step, "ScheduledStationAETitle")
        query.modality = _exact(step, "Modality")
        query.step_id = _exact(step, "ScheduledProcedureStepID")
        status = _exact(step, "ScheduledProcedureStepStatus")
        if status is not None:
            # Another defined term (ARRIVED, READY, ...) matches none of ours: matching
            # against the item's real state leaves the answer empty.
            query.step_status = _STEP_STATUSES.get(status)
        date = _exact(step, "ScheduledProcedureStepStartDate")
        if date:
            low, dash, high = date.partition("-")
            query.date_from = _date(low)
            query.date_to = _date(high) if dash else query.date_from
    return query


class WorklistFindHandler:
    """EVT_C_FIND for the MWL information model: one pending response per matching item."""

    def __init__(self, api: InternalApi, recorder: AuditRecorder | None = None) -> None:
        self.api = api
        # Each item answered is an audit entry (its patient and study), like a C-FIND match.
        self.recorder = recorder

    def __call__(self, event: Any) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        try:
            identifier: Dataset = event.identifier
            query = coarse_query(identifier)
        except Exception as exc:  # noqa: BLE001 - any decode failure is the peer's bad query
            log.warning("MWL C-FIND with an undecodable identifier: %r", exc)
            yield _failure(UNABLE_TO_PROCESS, "identifier could not be decoded"), None
            return
        try:
            items = self.api.worklist(query)
        except (ApiUnavailable, ValueError) as exc:
            log.error("MWL C-FIND: worklist read model unavailable: %r", exc)
            yield _failure(UNABLE_TO_PROCESS, "worklist temporarily unavailable"), None
            return
        answered: list[WorklistItemView] = []
        try:
            for item in items:
                if event.is_cancelled:
                    yield CANCELLED, None
                    return
                candidate = item_dataset(item)
                if matches(identifier, candidate):
                    answered.append(item)
                    found = response(identifier, candidate)
                    found.SpecificCharacterSet = "ISO_IR 192"
                    yield PENDING, found
        finally:
            self._audit(event.assoc, answered)
        log.info(
            "MWL C-FIND from %s: %d of %d items matched",
            event.assoc.requestor.ae_title.strip(),
            len(answered),
            len(items),
        )
        yield SUCCESS, None

    def _audit(self, assoc: Any, answered: list[WorklistItemView]) -> None:
        if self.recorder is None:
            return
        calling = assoc.requestor.ae_title.strip()
        address = str(assoc.requestor.address)
        user = user_name(assoc)
        detail = f"{len(answered)} item(s)"
        if not answered:
            self.recorder.record(dimse_entry("mwl-find", "success", calling, address, detail, user))
        for item in answered:
            self.recorder.record(
                dimse_entry(
                    "mwl-find",
                    "success",
                    calling,
                    address,
                    detail,
                    user,
                    patient_id=item.patient_id,
                    study_instance_uid=item.study_instance_uid,
                )
            )


def _failure(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]
    return status
