"""Storage tiers: moving a study between them, and the rules that decide when."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from schemas.nodes import SavedVersion

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


class StorageRuleBody(BaseModel):
    """A storage rule: studies that meet every condition it names move to `to_tier`.

    It must name at least one age (of the study, since received, or since last read): a
    rule by modality alone would move every such study at once, the unbounded threshold
    dcm4chee users were bitten by. Rules only move studies down (hot to warm to cold); a
    study comes back up by a manual move or a recall on read.
    """

    to_tier: Literal["warm", "cold"]
    # StudyDate older than this many days.
    study_older_than_days: float | None = Field(default=None, ge=0)
    # The study's newest instance received more than this many days ago.
    received_more_than_days: float | None = Field(default=None, ge=0)
    # Not read (WADO, C-GET, C-MOVE) for this many days; never read: since received.
    idle_more_than_days: float | None = Field(default=None, ge=0)
    # Only studies with one of these in ModalitiesInStudy (none: any modality).
    modalities: list[str] = Field(default_factory=list)
    enabled: bool = True

    @model_validator(mode="after")
    def _names_an_age(self) -> StorageRuleBody:
        ages = (self.study_older_than_days, self.received_more_than_days, self.idle_more_than_days)
        if all(a is None for a in ages):
            raise ValueError(
                "a storage rule needs an age: study_older_than_days, received_more_than_days"
                " or idle_more_than_days"
            )
        return self


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
