"""Retention rules: studies old enough are deleted, as a DELETE would (grace period, purge)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.nodes import SavedVersion
from schemas.study_ages import StudyAges


class RetentionRuleBody(StudyAges):
    """Studies that meet every condition the rule names are deleted (a dry run first)."""

    reason: str = Field(default="", max_length=200)  # recorded with each deletion


class RetentionRule(RetentionRuleBody, SavedVersion):
    """A saved retention rule."""


class RetentionMatch(BaseModel):
    rule: str
    study_instance_uid: str
    patient_id: str = ""


class RetentionRunInput(BaseModel):
    """Start of a RetentionWorkflow (the `retention` schedule, or on demand)."""

    dry_run: bool = False
    limit: int = Field(default=1000, ge=1)  # studies one run deletes at most
    grace_seconds: float = Field(default=7 * 24 * 3600.0, ge=0)


class RetentionRunResult(BaseModel):
    dry_run: bool
    matched: list[RetentionMatch] = Field(default_factory=list)
    deletions: list[str] = Field(default_factory=list)  # the deletion ids recorded
