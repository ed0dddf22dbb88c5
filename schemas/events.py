"""Events on the log: the source of truth for what happened.

An event's wire identity is `type` + `version`, never a Python class path. Old versions
are upcast when read, never rewritten. Every event carries an `event_id`; where the same
fact may be announced twice (a re-sent instance, a crash between landing and ack) the id is
derived from the fact itself, so consumers can drop the repeat.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# Fixed namespace for deterministic event ids (uuid5); changing it would break dedup.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a53-0d7e-4d0b-9a55-2f6b1f1c8e01")


def fact_event_id(*parts: str) -> uuid.UUID:
    """An event id derived from the fact it announces, so a repeat has the same id."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts))


def _now() -> datetime:
    return datetime.now(UTC)


class InstanceRef(BaseModel):
    """The identity of one SOP instance and of the bytes that were received for it."""

    model_config = ConfigDict(frozen=True)

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    sha256: str
    size: int


class EventBase(BaseModel):
    """Fields every event has."""

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)


class InstanceReceived(EventBase):
    """An instance's bytes are durable in the landing area; the sender has (or will) get success."""

    type: Literal["pacs.instance.received"] = "pacs.instance.received"
    version: Literal[1] = 1
    instance: InstanceRef
    transfer_syntax_uid: str
    patient_id: str = ""
    modality: str = ""
    landing_mode: Literal["spool", "s3"]
    landing_key: str
    # "dimse" or "stow"; who sent it (calling AE title, or HTTP client address)
    via: Literal["dimse", "stow"]
    calling_ae: str = ""
    client: str = ""
    # Set when the duplicate policy let these bytes replace an earlier version.
    replaces_sha256: str | None = None
    # The header as DICOM JSON (PS3.18 F.2), bulk data as BulkDataURIs relative to the
    # DICOMweb root. Read models (C-FIND, QIDO, WADO-RS metadata) are built from this, so
    # they never re-read the object. Absent on events written before it existed.
    metadata: dict[str, Any] | None = None


class InstanceRejected(EventBase):
    """A received instance was refused after its bytes arrived (e.g. a different duplicate)."""

    type: Literal["pacs.instance.rejected"] = "pacs.instance.rejected"
    version: Literal[1] = 1
    instance: InstanceRef
    reason: str
    existing_sha256: str = ""
    via: Literal["dimse", "stow"]
    calling_ae: str = ""
    client: str = ""


class InstanceStored(EventBase):
    """An instance is in the archive bucket, its checksum verified after the write."""

    type: Literal["pacs.instance.stored"] = "pacs.instance.stored"
    version: Literal[1] = 1
    instance: InstanceRef
    bucket: str
    archive_key: str
    # Where the earlier version went when this one replaced it (duplicate policy overwrite).
    previous_version_key: str | None = None


class StudyStabilized(EventBase):
    """No new instance arrived for the study's quiet period."""

    type: Literal["pacs.study.stabilized"] = "pacs.study.stabilized"
    version: Literal[1] = 1
    study_instance_uid: str
    patient_id: str = ""
    series_count: int
    instance_count: int
    quiet_seconds: float


Event = Annotated[
    InstanceReceived | InstanceRejected | InstanceStored | StudyStabilized,
    Field(discriminator="type"),
]

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> Event:
    """Decode an event from its JSON wire form (upcasting older versions when there are any)."""
    return _EVENT_ADAPTER.validate_json(raw)


def event_key(event: Event) -> str:
    """The partition key: all events of a study stay in order on one partition."""
    if isinstance(event, StudyStabilized):
        return event.study_instance_uid
    return event.instance.study_instance_uid
