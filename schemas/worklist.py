"""Modality Worklist items: what the REST API accepts and what the MWL read model holds.

One item is one Requested Procedure with one Scheduled Procedure Step (PS3.4 K.6.1: each
C-FIND response carries exactly one Scheduled Procedure Step Sequence item).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_AE_FORBIDDEN = re.compile(r"[\\\x00-\x1f]")


def _check_uid(value: str) -> str:
    if len(value) > 64:
        raise ValueError("a UID is at most 64 characters (PS3.5 9.1)")
    if not _UID.match(value):
        raise ValueError("a UID is digits separated by single dots (PS3.5 9.1)")
    return value


def _check_ae(value: str) -> str:
    if len(value.strip()) > 16 or _AE_FORBIDDEN.search(value):
        raise ValueError("an AE title is at most 16 characters, no backslash or control codes")
    return value.strip()


Uid = Annotated[str, AfterValidator(_check_uid)]
AeTitle = Annotated[str, AfterValidator(_check_ae)]
# SH (short string) is at most 16 characters, LO 64, PN 64 per component group.
ShortString = Annotated[str, Field(max_length=16, pattern=r"^[^\\\x00-\x1f]*$")]
LongString = Annotated[str, Field(max_length=64, pattern=r"^[^\\\x00-\x1f]*$")]
PersonName = Annotated[str, Field(max_length=194, pattern=r"^[^\\\x00-\x1f]*$")]


class ScheduledStep(BaseModel):
    """The Scheduled Procedure Step (ScheduledProcedureStepSequence item)."""

    model_config = ConfigDict(frozen=True)

    step_id: ShortString = Field(description="ScheduledProcedureStepID")
    station_ae_title: AeTitle = Field(description="ScheduledStationAETitle")
    modality: ShortString = Field(pattern=r"^[A-Z0-9_ ]{1,16}$", description="Modality")
    start_date: dt.date = Field(description="ScheduledProcedureStepStartDate")
    start_time: dt.time | None = Field(None, description="ScheduledProcedureStepStartTime")
    description: LongString = Field("", description="ScheduledProcedureStepDescription")
    station_name: ShortString = Field("", description="ScheduledStationName")
    location: ShortString = Field("", description="ScheduledProcedureStepLocation")
    performing_physician: PersonName = Field("", description="ScheduledPerformingPhysicianName")


class WorklistItemBody(BaseModel):
    """A scheduled procedure as a RIS/HIS sends it (POST and PUT body)."""

    model_config = ConfigDict(frozen=True)

    patient_name: PersonName = Field(description="PatientName, DICOM PN: Family^Given^Middle")
    patient_id: LongString = Field(min_length=1, description="PatientID")
    patient_birth_date: dt.date | None = Field(None, description="PatientBirthDate")
    patient_sex: Literal["M", "F", "O", ""] = Field("", description="PatientSex")
    accession_number: ShortString = Field("", description="AccessionNumber")
    study_instance_uid: Uid | None = Field(
        None, description="StudyInstanceUID the modality must use; generated when absent"
    )
    requested_procedure_id: ShortString = Field("", description="RequestedProcedureID")
    requested_procedure_description: LongString = Field(
        "", description="RequestedProcedureDescription"
    )
    referring_physician: PersonName = Field("", description="ReferringPhysicianName")
    scheduled_step: ScheduledStep


class WorklistItem(WorklistItemBody):
    """An item as the platform holds it: the body plus its identity and state."""

    item_id: str = Field(description="Server-assigned identity of the item")
    study_instance_uid: Uid = Field(description="StudyInstanceUID the modality must use")
    status: Literal["scheduled", "cancelled"] = "scheduled"


# ScheduledProcedureStepStatus (0040,0020) as the MPPS of the step make it: SCHEDULED until
# one is created, STARTED while one is IN PROGRESS, then COMPLETED or DISCONTINUED.
StepStatus = Literal["SCHEDULED", "STARTED", "COMPLETED", "DISCONTINUED"]


class WorklistItemView(WorklistItem):
    """An item as the read model answers it: the item and the state of its step, derived
    from the Modality Performed Procedure Steps that reference it."""

    step_status: StepStatus = Field(
        "SCHEDULED", description="ScheduledProcedureStepStatus, from the MPPS that performed it"
    )
    step_status_since: dt.datetime | None = Field(
        None, description="When an MPPS last brought the step to this status (None: SCHEDULED)"
    )
    performed_procedure_steps: list[str] = Field(
        default_factory=list, description="SOP Instance UIDs of the MPPS referencing the item"
    )


class WorklistQuery(BaseModel):
    """Coarse filters the read model applies; DICOM matching rules are applied by the SCP.

    By default an item whose step is COMPLETED or DISCONTINUED is left out once it has been
    so since before `finished_since` (None: left out at once); `include_finished` keeps
    them all, and `step_status` asks for exactly one status, however long ago it was reached.
    """

    station_ae_title: str | None = None
    modality: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    patient_id: str | None = None
    accession_number: str | None = None
    study_instance_uid: str | None = None
    step_id: str | None = None
    include_cancelled: bool = False
    step_status: StepStatus | None = None
    include_finished: bool = False
    finished_since: dt.datetime | None = None
    limit: int = Field(1000, ge=1, le=10_000)
