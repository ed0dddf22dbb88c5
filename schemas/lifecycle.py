"""Deleting stored objects: what a deletion covers, and the purge that follows its grace period.

A deletion is a fact in the log (`pacs.instances.deleted`): the read models drop what it
covers at once, and the bytes stay until the grace period has passed, when a workflow
purges them from storage (`pacs.instances.purged`). An instance received again after its
deletion is a new arrival: it is listed again and never purged.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property

from pydantic import BaseModel, Field

from schemas.catalog import InstanceQuery


class DeletionScope(BaseModel):
    """A study, one of its series, or instances of one series (the narrower UIDs empty for
    wider): a REST deletion names one instance, a rejection note (IOCM) any of a series."""

    study_instance_uid: str
    series_instance_uid: str = ""
    sop_instance_uids: list[str] = Field(default_factory=list)

    def covers(self, study: str, series: str, sop: str) -> bool:
        return (
            study == self.study_instance_uid
            and self.series_instance_uid in ("", series)
            and (not self.sop_instance_uids or sop in self._sops)
        )

    @cached_property
    def _sops(self) -> frozenset[str]:
        return frozenset(self.sop_instance_uids)

    def instance_query(self, caught_up: bool = False) -> InstanceQuery:
        """The catalog's listing of what this covers (still listed, or listed again)."""
        return InstanceQuery(
            study_instance_uids=[self.study_instance_uid],
            series_instance_uids=[self.series_instance_uid] if self.series_instance_uid else [],
            sop_instance_uids=self.sop_instance_uids,
            caught_up=caught_up,
        )

    @property
    def label(self) -> str:
        if len(self.sop_instance_uids) == 1:
            return f"instance {self.sop_instance_uids[0]} of series {self.series_instance_uid}"
        if self.sop_instance_uids:
            count = len(self.sop_instance_uids)
            return f"{count} instances of series {self.series_instance_uid}"
        if self.series_instance_uid:
            return f"series {self.series_instance_uid}"
        return f"study {self.study_instance_uid}"


class PurgeInput(BaseModel):
    """Start of a DeletionWorkflow: purge what `scope` covered when it was deleted."""

    deletion_id: str
    scope: DeletionScope
    deleted_at: datetime
    purge_after: datetime


class PurgeResult(BaseModel):
    objects_removed: int = 0  # archive objects and their kept versions, landing copies
    bytes_removed: int = 0
    kept: list[str] = Field(default_factory=list)  # SOP UIDs received again since: kept


class RejectionNote(BaseModel):
    """An IHE IOCM rejection note: a Key Object Selection whose title rejects the instances
    it lists (e.g. "Rejected for Quality Reasons"), one scope per series it names."""

    sop_instance_uid: str  # the note's own
    study_instance_uid: str
    reason_code: str  # DCM code value, e.g. 113001
    reason: str  # its meaning
    scopes: list[DeletionScope]


class RejectionInput(BaseModel):
    """Start of a RejectionWorkflow: delete what a rejection note lists, as a DELETE would."""

    note: RejectionNote
    deletion_ids: list[str]  # one per scope, derived from the note so a retry reuses them
    patient_id: str = ""
    actor: str  # who sent the note, e.g. "iocm:CT_SCANNER"
    grace_seconds: float


class Tombstoned(BaseModel):
    """A deletion whose tombstone is stored, to be recorded."""

    deletion_id: str
    scope: DeletionScope


class RejectionResult(BaseModel):
    deletions: list[str] = Field(default_factory=list)  # the ids that covered something
    instances: int = 0  # how many the note rejected
    not_found: list[str] = Field(default_factory=list)  # listed, but not stored here


class FixityProblem(BaseModel):
    """An archived object whose content no longer reads back as the SHA-256 it was stored
    with (or cannot be read at all)."""

    key: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    expected_sha256: str  # recorded when it was archived (verified then)
    found_sha256: str  # "" when it could not be read, or no SHA-256 was recorded
    reason: str  # "content differs", "unreadable", "no recorded SHA-256"
    tier: str = "hot"  # the storage tier that holds the object


class FixityInput(BaseModel):
    """Start of a FixityWorkflow: re-read every archived object under `study_instance_uid`
    (all when empty); the rest carries a run across continue-as-new."""

    study_instance_uid: str = ""
    page_size: int = Field(default=200, ge=1, le=5000)
    tier: str = "hot"  # the tier being read; the run reads hot, then warm, then cold
    start_after: str = ""
    checked: int = 0
    bytes_read: int = 0
    damaged: int = 0
    problems: list[FixityProblem] = Field(default_factory=list)  # the first KEPT_PROBLEMS


class FixityPage(BaseModel):
    """What one activity call checked: up to `page_size` objects after `start_after`."""

    checked: int = 0
    bytes_read: int = 0
    problems: list[FixityProblem] = Field(default_factory=list)
    last_key: str = ""  # where the next page starts; "" when this was the last


class FixityResult(BaseModel):
    study_instance_uid: str = ""
    checked: int = 0
    bytes_read: int = 0
    damaged: int = 0
    problems: list[FixityProblem] = Field(default_factory=list)
