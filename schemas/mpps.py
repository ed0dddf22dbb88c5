"""Modality Performed Procedure Step: what the MPPS SCP keeps of each N-CREATE / N-SET.

Only the attributes the platform acts on (worklist link, instance check, search) are kept;
the rest of the dataset stays with the modality.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MppsStatus = Literal["IN PROGRESS", "COMPLETED", "DISCONTINUED"]


class ScheduledStepRef(BaseModel):
    """One ScheduledStepAttributesSequence item: which worklist entry was performed."""

    study_instance_uid: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    scheduled_procedure_step_id: str = ""


class PerformedSeries(BaseModel):
    """One PerformedSeriesSequence item with the instances the modality says it made."""

    series_instance_uid: str
    sop_instance_uids: list[str] = Field(default_factory=list)


class MppsAttributes(BaseModel):
    """Attributes from an N-CREATE or N-SET; None = not in that message (left unchanged)."""

    status: MppsStatus | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    modality: str | None = None
    performed_station_ae_title: str | None = None
    performed_procedure_step_id: str | None = None
    description: str | None = None
    start_date: str | None = None
    start_time: str | None = None
    end_date: str | None = None
    end_time: str | None = None
    discontinuation_reason: str | None = None
    scheduled_steps: list[ScheduledStepRef] | None = None
    performed_series: list[PerformedSeries] | None = None


class MppsState(BaseModel):
    """The current state of one MPPS instance."""

    sop_instance_uid: str
    calling_ae: str = ""
    status: MppsStatus = "IN PROGRESS"
    patient_id: str = ""
    patient_name: str = ""
    modality: str = ""
    performed_station_ae_title: str = ""
    performed_procedure_step_id: str = ""
    description: str = ""
    start_date: str = ""
    start_time: str = ""
    end_date: str = ""
    end_time: str = ""
    discontinuation_reason: str = ""
    scheduled_steps: list[ScheduledStepRef] = Field(default_factory=list)
    performed_series: list[PerformedSeries] = Field(default_factory=list)

    @property
    def study_instance_uid(self) -> str:
        """The study the procedure was scheduled under, when the modality said so."""
        return next(
            (s.study_instance_uid for s in self.scheduled_steps if s.study_instance_uid), ""
        )

    @property
    def sop_instance_uids(self) -> list[str]:
        """Every instance the modality reports as made by this step."""
        return [uid for series in self.performed_series for uid in series.sop_instance_uids]


class InstanceVerification(BaseModel):
    """Whether the instances an MPPS references reached the archive in time."""

    expected: int
    found: int
    missing: list[str] = Field(default_factory=list)
    complete: bool
    waited_seconds: float


class MppsView(BaseModel):
    """What the platform knows of one MPPS: its state, worklist link and instance check."""

    state: MppsState
    worklist_item_id: str | None = None
    verification: InstanceVerification | None = None


class MppsStart(BaseModel):
    """Start input of MppsWorkflow (from N-CREATE)."""

    state: MppsState
    verify_timeout_seconds: float = 600.0
    verify_poll_seconds: float = 10.0


class MppsSet(BaseModel):
    """Update: one N-SET's modification list."""

    attributes: MppsAttributes


class MppsSetResult(BaseModel):
    """The DIMSE status the N-SET is answered with, and why."""

    status: int
    reason: str = ""


class WorklistLinkRequest(BaseModel):
    """Activity input: find the worklist item a performed step was scheduled as."""

    scheduled_steps: list[ScheduledStepRef]


class WorklistLinkResult(BaseModel):
    item_id: str | None = None
    matched_by: str = ""


class InstanceCheck(BaseModel):
    """Activity input: which of these SOP instances has the platform received?"""

    sop_instance_uids: list[str]


class InstanceCheckResult(BaseModel):
    found: list[str]
