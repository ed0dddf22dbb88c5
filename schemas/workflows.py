"""Inputs and outputs of workflows and activities: UIDs, keys and counts, never pixel data."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from schemas.events import Event, InstanceRef


class LandedInstance(BaseModel):
    """An instance waiting in the landing area for the archive workflow."""

    instance: InstanceRef
    landing_mode: str
    landing_key: str
    transfer_syntax_uid: str
    replaces_sha256: str | None = None
    # When its received event was made: the start of the archive lag (metrics).
    received_at: datetime | None = None


class StudyContext(BaseModel):
    """What ops search a study's workflow by."""

    study_instance_uid: str
    patient_id: str = ""
    modality: str = ""
    calling_ae: str = ""


class StudyIngestInput(BaseModel):
    """Start (or continue-as-new) input of StudyIngestWorkflow."""

    context: StudyContext
    stable_after_seconds: float = 30.0
    batch_size: int = 50
    # Archive once the study has had no new instance for this long, or `archive_backlog`
    # instances wait: copying to the archive competes with ingest for the object store.
    archive_settle_seconds: float = 2.0
    archive_backlog: int = 500
    # Carried over on continue-as-new so counts and dedup survive the new run.
    pending: list[LandedInstance] = Field(default_factory=list)
    archived: dict[str, str] = Field(default_factory=dict)  # sop uid -> sha256
    series: list[str] = Field(default_factory=list)


class InstancesReceived(BaseModel):
    """Signal: a batch of landed instances of one study."""

    context: StudyContext
    instances: list[LandedInstance]


class ArchiveBatch(BaseModel):
    """Activity input: move these landed instances into the archive."""

    instances: list[LandedInstance]


class ArchivedInstance(BaseModel):
    sop_instance_uid: str
    series_instance_uid: str
    sha256: str
    archive_key: str


class ArchiveResult(BaseModel):
    archived: list[ArchivedInstance]


class StudyStableNotice(BaseModel):
    """Activity input: announce that a study went quiet."""

    study_instance_uid: str
    patient_id: str
    series_count: int
    instance_count: int
    quiet_seconds: float
    # Deterministic id so a retried activity announces the same fact once.
    event_id: str


class PublishEvents(BaseModel):
    """Activity input: events a workflow announces (ids and times fixed by the workflow)."""

    events: list[Event]


class JobProgress(BaseModel):
    """What a running job has done: the `progress` query every long workflow answers
    (the jobs API shows it). `total` is None while it is not known yet."""

    done: int
    total: int | None = None
    stage: str = ""
