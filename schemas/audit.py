"""The audit trail and the change feed as the API answers them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AuditEvent(BaseModel):
    """One event as the audit projection holds it (repeats of one event id counted once)."""

    event_id: str
    type: str
    occurred_at: datetime
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    via: str
    calling_ae: str
    client: str
    size: int
    sha256: str


class Change(BaseModel):
    """One event: its position on the log (`seq`), type and what it is about."""

    seq: int
    partition: int
    type: str
    occurred_at: datetime
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str


class ChangePage(BaseModel):
    """Changes after `since`, oldest first; ask again with `since=last` until `done`."""

    changes: list[Change]
    last: int
    done: bool
