"""What the read model knows about each stored instance: enough to find and send its bytes.

Shared by the DICOMweb routes (in the API process, which owns ClickHouse) and the DIMSE
gateway's retrieve services (which ask the API over HTTP).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.security import StudyRuleModel


class CatalogInstance(BaseModel):
    """One instance as the read model holds it; bytes live in landing or the archive."""

    model_config = ConfigDict(frozen=True)

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    instance_number: int | None = None
    number_of_frames: int = 1
    rows: int = 0
    columns: int = 0
    size: int = 0
    sha256: str = ""
    received_at: datetime | None = None
    # Corrected patient attributes of its study (DICOM keyword -> value), which a retrieve
    # coerces into the object it sends; filled in for retrieves (the internal API).
    patient_changes: dict[str, str] = Field(default_factory=dict)

    @field_validator("received_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # The catalog keeps UTC; a driver may hand it back without its zone.
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


class InstanceQuery(BaseModel):
    """Which instances to list: a study, optionally narrowed to series and/or SOP UIDs."""

    study_instance_uids: list[str] = []
    series_instance_uids: list[str] = []
    sop_instance_uids: list[str] = []
    patient_id: str | None = None
    # Answer only once the catalog holds every event acknowledged before the request, so
    # an instance missing from the answer was never received (or was removed). Applying the
    # log up to `log_positions` (partition -> offset, what the asking gateway had announced)
    # proves it for that gateway's instances at once; otherwise the projector must find
    # the end of the log.
    caught_up: bool = False
    log_positions: dict[int, int] = {}
    # A retrieve on behalf of a scoped user (DIMSE user identity): only the studies these
    # rules admit are listed (infra/auth/scope.py). None: no such limit.
    scope: list[StudyRuleModel] | None = None
