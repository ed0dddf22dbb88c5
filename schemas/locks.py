"""Study locks: leases on a study's storage, held by one Temporal workflow per study."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

LOCK_WORKFLOW = "StudyLockWorkflow"
# The updates and query of the lock workflow, by name: callers below the workflows layer
# (activities, adapters) reach it without importing it.
ACQUIRE, RELEASE, FORCE_RELEASE, STATE = "acquire", "release", "force_release", "state"
# Why an acquire failed, as the ApplicationError type callers can tell apart.
LOCK_BUSY = "StudyLockBusy"

# Who goes first among waiters: a purge, then a move, then readers.
PRIORITY_PURGE = 20
PRIORITY_MIGRATION = 10
PRIORITY_RETRIEVE = 0


def lock_workflow_id(study_instance_uid: str) -> str:
    return f"lock:{study_instance_uid}"


class LockRequest(BaseModel):
    mode: Literal["exclusive", "shared"]
    owner: str  # who holds it, as the lock's state and the audit show it: "migrate:<study>"
    ttl_seconds: float = Field(default=3600.0, gt=0)  # expires unless released before
    priority: int = 0  # higher first among waiters
    wait_seconds: float = Field(default=60.0, ge=0)  # then LOCK_BUSY


class LockGrant(BaseModel):
    token: str
    mode: Literal["exclusive", "shared"]
    owner: str
    granted_at: datetime
    expires_at: datetime


class LockWaiter(BaseModel):
    owner: str
    mode: Literal["exclusive", "shared"]
    priority: int
    since: datetime


class LockState(BaseModel):
    study_instance_uid: str
    holders: list[LockGrant] = Field(default_factory=list)
    waiting: list[LockWaiter] = Field(default_factory=list)
