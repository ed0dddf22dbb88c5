"""De-identification: the request, its options, the workflow's inputs and results, the map.

The workflow payloads carry UIDs, object keys and counts; the re-identification map (which
holds the original PatientID and name) never passes through Temporal: the activity writes it
to the object store, and only `admin` may read it back (api/rest/deidentify.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.nodes import NODE_NAME_PATTERN

UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
# Where the copy goes: a new study through our own ingest path, a registered node, or a zip.
TARGET_PATTERN = rf"^(archive|zip|{NODE_NAME_PATTERN[1:-1]})$"


class DeidentifyOptions(BaseModel):
    """The PS3.15 Annex E options applied on top of the Basic Application Level
    Confidentiality Profile (which always applies)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retain_longitudinal_modified_dates: bool = Field(
        default=True,
        description="Retain Longitudinal Temporal Information with Modified Dates: every "
        "date of a patient moves by one keyed offset of whole days",
    )
    retain_patient_characteristics: bool = Field(
        default=False, description="Retain Patient Characteristics (sex, age, size, weight…)"
    )
    clean_descriptors: bool = Field(
        default=False,
        description="Clean Descriptors: keep study/series/protocol descriptions, cleaned of "
        "every identifying value found in the object",
    )
    retain_device_identity: bool = Field(
        default=False, description="Retain Device Identity (station name, serial numbers…)"
    )

    def names(self) -> list[str]:
        """The options switched on, in a fixed order (for keys and for the method text)."""
        return [name for name, on in self.model_dump().items() if on]


class DeidentifyBody(BaseModel):
    """POST /api/deidentify."""

    model_config = ConfigDict(extra="forbid")

    study_instance_uid: str = Field(max_length=64, pattern=UID_PATTERN)
    options: DeidentifyOptions = DeidentifyOptions()
    target: str = Field(
        default="archive",
        pattern=TARGET_PATTERN,
        description='"archive" (a new study here, through the ingest path), "zip" (a '
        "download), or the name of a registered node (C-STORE)",
    )


class DeidentifyAccepted(BaseModel):
    """The answer to POST /api/deidentify: where to follow the job."""

    job_id: str
    workflow_id: str
    status_url: str


class DeidentificationInput(BaseModel):
    """Start input of DeidentificationWorkflow."""

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    study_instance_uid: str
    options: DeidentifyOptions
    target: str
    requested_by: str = ""


class StagedStudy(BaseModel):
    """What the transform activity wrote under the job's staging prefix."""

    job_id: str
    study_instance_uid: str  # the copy's (new) Study Instance UID
    instance_count: int
    series_count: int
    staging_prefix: str
    map_key: str


class DeliverInput(BaseModel):
    job_id: str
    target: str  # "archive", "zip" or a node's name
    staging_prefix: str


class Delivered(BaseModel):
    delivered: int
    zip_key: str | None = None
    detail: str = ""


JobState = Literal["running", "completed", "failed"]


class DeidentificationResult(BaseModel):
    """What the workflow returns: where the copy is."""

    job_id: str
    source_study_instance_uid: str
    study_instance_uid: str
    instance_count: int
    series_count: int
    target: str
    delivered: int
    zip_available: bool = False


class DeidentifyStatus(BaseModel):
    """GET /api/deidentify/{job}."""

    job_id: str
    workflow_id: str
    state: JobState
    target: str = ""
    study_instance_uid: str | None = None  # the copy's, once done
    instance_count: int | None = None
    delivered: int | None = None
    zip_url: str | None = None
    error: str | None = None


class UidPair(BaseModel):
    original: str
    deidentified: str


class InstanceMapping(BaseModel):
    series_instance_uid: UidPair
    sop_instance_uid: UidPair


class ReidentificationMap(BaseModel):
    """Original ↔ de-identified identifiers of one job (admin only)."""

    job_id: str
    options: DeidentifyOptions
    patient_id: UidPair
    patient_name: UidPair
    date_offset_days: int
    study_instance_uid: UidPair
    instances: list[InstanceMapping]
    # Every other UID the copy replaced (frames of reference, referenced objects, …).
    other_uids: list[UidPair] = []
