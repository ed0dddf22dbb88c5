"""Deleting stored objects: what a deletion covers, and the purge that follows its grace period.

A deletion is a fact in the log (`pacs.instances.deleted`): the read models drop what it
covers at once, and the bytes stay until the grace period has passed, when a workflow
purges them from storage (`pacs.instances.purged`). An instance received again after its
deletion is a new arrival: it is listed again and never purged.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from schemas.catalog import InstanceQuery


class DeletionScope(BaseModel):
    """A study, one of its series, or one instance (the narrower UIDs empty for wider)."""

    study_instance_uid: str
    series_instance_uid: str = ""
    sop_instance_uid: str = ""

    def covers(self, study: str, series: str, sop: str) -> bool:
        return (
            study == self.study_instance_uid
            and self.series_instance_uid in ("", series)
            and self.sop_instance_uid in ("", sop)
        )

    def instance_query(self, caught_up: bool = False) -> InstanceQuery:
        """The catalog's listing of what this covers (still listed, or listed again)."""
        return InstanceQuery(
            study_instance_uids=[self.study_instance_uid],
            series_instance_uids=[self.series_instance_uid] if self.series_instance_uid else [],
            sop_instance_uids=[self.sop_instance_uid] if self.sop_instance_uid else [],
            caught_up=caught_up,
        )

    @property
    def label(self) -> str:
        if self.sop_instance_uid:
            return f"instance {self.sop_instance_uid} of series {self.series_instance_uid}"
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
