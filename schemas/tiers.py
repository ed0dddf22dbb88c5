"""Storage tiers: moving a study between them, and the rules that decide when."""

from __future__ import annotations

from pydantic import BaseModel, Field

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
