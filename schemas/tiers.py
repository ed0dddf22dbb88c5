"""Storage tiers: moving a study between them, and the rules that decide when."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.nodes import SavedVersion
from schemas.study_ages import StudyAges

# In the order studies age through them; `hot` is the archive bucket.
TIER_NAMES = ("hot", "warm", "cold")


class MigrationInput(BaseModel):
    """Start of a StudyMigrationWorkflow."""

    study_instance_uid: str
    to_tier: str
    reason: str = "manual"  # "manual", "rule:<name>", "recall"
    actor: str = ""
    patient_id: str = ""
    page_size: int = Field(default=100, ge=1, le=5000)


class MigrationPage(BaseModel):
    """One activity's share of a move: up to `page_size` objects after `start_after`."""

    study_instance_uid: str
    to_tier: str
    start_after: str = ""
    page_size: int = 100


class MigrationPageResult(BaseModel):
    moved: int = 0  # copied to the target, verified, announced, source removed
    already: int = 0  # found in the target only (moved by an earlier attempt)
    bytes_moved: int = 0
    # Objects whose source copy does not read back as its recorded SHA-256: left where they
    # are (a fixity problem to repair, not a copy to spread).
    damaged: list[str] = Field(default_factory=list)
    last_key: str = ""  # where the next page starts; "" when this was the last


class MigrationResult(BaseModel):
    study_instance_uid: str
    to_tier: str
    moved: int = 0
    already: int = 0
    bytes_moved: int = 0
    damaged: list[str] = Field(default_factory=list)


class StorageRuleBody(StudyAges):
    """A storage rule: studies that meet every condition it names move to `to_tier`. Rules
    only move studies down (hot to warm to cold); a study comes back up by a manual move."""

    to_tier: Literal["warm", "cold"]


class StorageRule(StorageRuleBody, SavedVersion):
    """A saved storage rule."""


class TierUsage(BaseModel):
    tier: str
    instances: int
    bytes: int


class RulesRunInput(BaseModel):
    """Start of a StorageRulesWorkflow (the `tier-migration` schedule, or on demand)."""

    dry_run: bool = False
    at_once: int = Field(default=4, ge=1)
    limit: int = Field(default=1000, ge=1)  # studies one rule moves in one run


class RuleMatch(BaseModel):
    rule: str
    to_tier: str
    study_instance_uid: str
    patient_id: str = ""


class RulesRunResult(BaseModel):
    dry_run: bool
    matched: list[RuleMatch] = Field(default_factory=list)
    moved: int = 0  # studies whose move ended (instances in the result of each job)
    failed: list[str] = Field(default_factory=list)  # studies whose move did not
