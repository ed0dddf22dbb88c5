"""What storage and retention rules select studies by: their ages, and their modalities."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class StudyAges(BaseModel):
    """Studies that meet every condition named here. At least one age must be named: a
    rule by modality alone would take every such study at once (the unbounded threshold
    dcm4chee users were bitten by, dcm4chee #1380)."""

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
    def _names_an_age(self) -> StudyAges:
        ages = (self.study_older_than_days, self.received_more_than_days, self.idle_more_than_days)
        if all(a is None for a in ages):
            raise ValueError(
                "a rule needs an age: study_older_than_days, received_more_than_days"
                " or idle_more_than_days"
            )
        return self


class ApplyRules(BaseModel):
    """A request to apply rules now (storage or retention): a dry run unless asked."""

    dry_run: bool = True  # the default is to look first
    limit: int = Field(default=1000, ge=1, le=100_000)  # studies selected at most
