"""Multi-node sync: a relation between this platform and another node (another instance of
ours, Orthanc, any DIMSE or DICOMweb archive), the workflow's inputs, and what one run did.

What moves is decided here, as pure functions of what each side reports, so the
workflow and its tests share one rule: a study only one side holds moves whole
(`plan_sync`); a study both hold is compared series by series (instance counts), or, with
`compare: instances` against another instance of ours, instance by instance by the digest
of each data set (`diff_instances`), which also finds conflicts: the same SOP Instance UID
with different content on the two sides, settled by the relation's conflict policy
(`winner`).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from schemas.nodes import NODE_NAME_PATTERN, SavedVersion
from schemas.prefetch import PrefetchVia

RELATION_NAME_PATTERN = NODE_NAME_PATTERN
Direction = Literal["pull", "push", "both"]
PushVia = Literal["dimse", "stow"]
Compare = Literal["series", "instances"]
# keep-both: neither side's copy changes, the conflict is recorded for someone to settle;
# prefer-newer: the version received later (each side's own received time) is sent to the
# other side; prefer-here / prefer-there: this side's / the node's version is.
ConflictPolicy = Literal["keep-both", "prefer-newer", "prefer-here", "prefer-there"]
Side = Literal["here", "there"]


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
    # Studies both sides hold: compared by per-series instance counts, or (the node being
    # another instance of ours, with an API key) by the digest of every instance.
    compare: Compare = "series"
    conflicts: ConflictPolicy = "keep-both"
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
    pull: list[StudyCount] = Field(default_factory=list)  # only there
    push: list[StudyCount] = Field(default_factory=list)  # only here
    both: list[str] = Field(default_factory=list)  # on both sides: compared in detail


def plan_sync(here: list[StudyCount], there: list[StudyCount], direction: Direction) -> SyncPlan:
    """A study only the other side holds is pulled whole, one only this side holds is
    pushed whole (as the direction allows); the studies both hold are compared in detail."""
    mine = {s.study_instance_uid: s for s in here}
    theirs = {s.study_instance_uid: s for s in there}
    plan = SyncPlan()
    for uid in sorted(mine.keys() | theirs.keys()):
        if uid in mine and uid in theirs:
            plan.both.append(uid)
        elif uid in theirs and direction in ("pull", "both"):
            plan.pull.append(theirs[uid])
        elif uid in mine and direction in ("push", "both"):
            plan.push.append(mine[uid])
    return plan


def may(direction: Direction, way: Literal["pull", "push"]) -> bool:
    return direction in (way, "both")


def diff_series(
    here: dict[str, int], there: dict[str, int], direction: Direction
) -> tuple[list[str], list[str]]:
    """(series to pull, series to push) of one study, from each side's instance count per
    series. A series moves whole: instances the receiving side holds already arrive again
    with identical bytes, which ours and other PACSs take as a no-op."""
    pull = [s for s in sorted(there) if there[s] > here.get(s, 0) and may(direction, "pull")]
    push = [s for s in sorted(here) if here[s] > there.get(s, 0) and may(direction, "push")]
    return pull, push


class InstanceDigest(BaseModel):
    """One side's instance, as compared instance by instance."""

    series_instance_uid: str
    sop_instance_uid: str
    dataset_sha256: str  # the data set without the File Meta group (infra/dicom/part10.py)
    received_at: datetime | None = None


class InstanceConflict(BaseModel):
    """The same SOP Instance UID with different content here and there."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    here_sha256: str
    there_sha256: str
    here_received_at: datetime | None = None
    there_received_at: datetime | None = None


class StudyDiff(BaseModel):
    """What differs in one study both sides hold."""

    study_instance_uid: str
    pull_series: list[str] = Field(default_factory=list)
    push_series: list[str] = Field(default_factory=list)
    conflicts: list[InstanceConflict] = Field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.pull_series or self.push_series or self.conflicts)


def diff_instances(
    study: str, here: list[InstanceDigest], there: list[InstanceDigest], direction: Direction
) -> StudyDiff:
    """A series with an instance only the other side holds is pulled (and the other way
    round, pushed); an instance both hold with different digests is a conflict."""
    mine = {d.sop_instance_uid: d for d in here}
    theirs = {d.sop_instance_uid: d for d in there}
    diff = StudyDiff(study_instance_uid=study)
    pull = {d.series_instance_uid for u, d in theirs.items() if u not in mine}
    push = {d.series_instance_uid for u, d in mine.items() if u not in theirs}
    diff.pull_series = sorted(pull) if may(direction, "pull") else []
    diff.push_series = sorted(push) if may(direction, "push") else []
    for uid in sorted(mine.keys() & theirs.keys()):
        a, b = mine[uid], theirs[uid]
        # An empty digest: that side could not read the bytes just now; nothing to judge.
        if a.dataset_sha256 and b.dataset_sha256 and a.dataset_sha256 != b.dataset_sha256:
            diff.conflicts.append(
                InstanceConflict(
                    study_instance_uid=study,
                    series_instance_uid=a.series_instance_uid,
                    sop_instance_uid=uid,
                    here_sha256=a.dataset_sha256,
                    there_sha256=b.dataset_sha256,
                    here_received_at=a.received_at,
                    there_received_at=b.received_at,
                )
            )
    return diff


def winner(conflict: InstanceConflict, policy: ConflictPolicy, direction: Direction) -> Side | None:
    """Whose version the other side is sent, or None when both stay as they are (keep-both,
    a tie or an unknown time under prefer-newer, or a direction that forbids the move)."""
    side: Side | None
    if policy == "prefer-here":
        side = "here"
    elif policy == "prefer-there":
        side = "there"
    elif policy == "prefer-newer":
        a, b = conflict.here_received_at, conflict.there_received_at
        side = None if a is None or b is None or a == b else ("here" if a > b else "there")
    else:
        side = None
    if side == "here" and not may(direction, "push"):
        return None
    if side == "there" and not may(direction, "pull"):
        return None
    return side


Resolution = Literal["kept-both", "sent-here", "sent-there", "refused"]


class SettledConflict(InstanceConflict):
    """A conflict and what became of it: `sent-here` (the node's version now here),
    `sent-there`, `kept-both`, or `refused` (the receiving side would not replace its
    version, e.g. its duplicate policy is reject; `detail` says why)."""

    policy: ConflictPolicy
    resolution: Resolution
    detail: str = ""


class CompareStudies(BaseModel):
    """Activity input: compare these studies, which both sides hold, in detail."""

    node: str
    via: PrefetchVia
    compare: Compare
    direction: Direction
    studies: list[str]


class SettleConflicts(BaseModel):
    """Activity input: send each conflict's winning version to the other side."""

    node: str
    push_via: PushVia
    policy: ConflictPolicy
    conflicts: list[InstanceConflict]
    winners: list[Side]


class PushStudy(BaseModel):
    node: str
    via: PushVia
    study_instance_uid: str
    series_instance_uids: list[str] = Field(default_factory=list)  # none: the whole study


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
    pulled: list[str] = Field(default_factory=list)  # studies brought here (whole or in part)
    pushed: list[str] = Field(default_factory=list)
    series_pulled: int = 0  # of studies both held, the series brought here
    series_pushed: int = 0
    conflicts: list[SettledConflict] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)  # "<study>: why"
