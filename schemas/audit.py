"""The audit trail and the change feed as the API answers them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field


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


Outcome = Literal["success", "failure", "denied"]


def _now() -> datetime:
    return datetime.now(UTC)


class AccessEntry(BaseModel):
    """One access to PHI or one security decision: who, what, which action, the outcome."""

    occurred_at: datetime = Field(default_factory=_now)
    # qido, wado, wado-metadata, wado-frames, wado-bulkdata, wado-rendered, wado-thumbnail,
    # wado-uri, c-find, c-move, c-get, mwl-find, login, unauthenticated, denied, ...
    action: str
    outcome: Outcome
    actor: str  # user name, api-key:<id>, oidc:<name>, service:<process>, or the calling AE
    via: str  # token, api-key, session, oidc, service, dimse, password
    address: str = ""
    calling_ae: str = ""
    patient_id: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    detail: str = ""  # the query, the status, the reason


class AccessPage(BaseModel):
    """Access entries, newest first; ask again with `offset` until `done`."""

    entries: list[AccessEntry]
    offset: int
    done: bool
