"""Multi-node sync: a relation between this platform and another node (another instance of
ours, Orthanc, any DIMSE or DICOMweb archive), the workflow's inputs, and what one run did.

Which studies move is decided here, as a pure function of the two study lists
(`plan_sync`), so the workflow and its tests share one rule.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from schemas.nodes import NODE_NAME_PATTERN, SavedVersion
from schemas.prefetch import PrefetchVia

RELATION_NAME_PATTERN = NODE_NAME_PATTERN
Direction = Literal["pull", "push", "both"]
PushVia = Literal["dimse", "stow"]


class SyncRelationBody(BaseModel):
    """What to keep the same between here and `node`, and how."""

    node: str
    direction: Direction = "both"
    # How studies come here (C-GET, C-MOVE to our AE title, WADO-RS) and go there.
    pull_via: PrefetchVia = "c-get"
    push_via: PushVia = "dimse"
    # Only studies of the last N days (StudyDate); none = every study.
    lookback_days: int | None = Field(default=None, ge=1, le=200 * 365)
    # A Temporal Schedule runs it this often; 0 = only when asked (POST .../run).
    interval_seconds: float = Field(default=0.0, ge=0, le=366 * 24 * 3600.0)
    enabled: bool = True
    description: str = Field(default="", max_length=1024)

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        if not re.fullmatch(NODE_NAME_PATTERN, value):
            raise ValueError(f"{value!r} is not a node name")
        return value


class SyncRelation(SyncRelationBody, SavedVersion):
    """A saved relation."""


class StudyCount(BaseModel):
    """One side's view of a study: how many instances it holds."""

    study_instance_uid: str
    instances: int
    study_date: date | None = None


class ListStudies(BaseModel):
    """Activity input: one side's studies (here when `node` is empty)."""

    node: str = ""
    via: PrefetchVia = "c-get"  # how the remote side is asked (wado: QIDO-RS)
    lookback_days: int | None = None


class SyncPlan(BaseModel):
    pull: list[StudyCount] = Field(default_factory=list)  # more there than here
    push: list[StudyCount] = Field(default_factory=list)  # more here than there
    same: int = 0


def plan_sync(here: list[StudyCount], there: list[StudyCount], direction: Direction) -> SyncPlan:
    """A study the other side holds more instances of is pulled; one this side holds more of
    is pushed (as the direction allows). The whole study moves: instances already on the
    receiving side arrive again with identical bytes, which both ours and other PACSs take
    as a no-op."""
    mine = {s.study_instance_uid: s for s in here}
    theirs = {s.study_instance_uid: s for s in there}
    plan = SyncPlan()
    for uid in sorted(mine.keys() | theirs.keys()):
        have = mine[uid].instances if uid in mine else 0
        other = theirs[uid].instances if uid in theirs else 0
        if other > have and direction in ("pull", "both"):
            plan.pull.append(theirs[uid])
        elif have > other and direction in ("push", "both"):
            plan.push.append(mine[uid])
        elif have == other:
            plan.same += 1
    return plan


class PushStudy(BaseModel):
    node: str
    via: PushVia
    study_instance_uid: str


class Pushed(BaseModel):
    study_instance_uid: str
    sent: int


class SyncInput(BaseModel):
    relation: SyncRelation
    requested_by: str = ""


class SyncResult(BaseModel):
    relation: str
    node: str
    studies_here: int = 0
    studies_there: int = 0
    same: int = 0
    pulled: list[str] = Field(default_factory=list)
    pushed: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)  # "<study>: why"
