"""Patient corrections and merges: what an administrator changes, and how it is recorded."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# The patient attributes a correction may change: DICOM keyword -> (tag, VR).
PATIENT_ATTRIBUTES = {
    "PatientName": ("00100010", "PN"),
    "PatientID": ("00100020", "LO"),
    "PatientBirthDate": ("00100030", "DA"),
    "PatientSex": ("00100040", "CS"),
}


class PatientChanges(BaseModel):
    """New values; an attribute left out keeps its value, "" empties it."""

    PatientName: str | None = Field(default=None, max_length=324)
    PatientID: str | None = Field(default=None, min_length=1, max_length=64)
    PatientBirthDate: str | None = Field(default=None, pattern=r"^(\d{8})?$")
    PatientSex: Literal["M", "F", "O", ""] | None = None

    def values(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class PatientCorrection(PatientChanges):
    """PATCH /api/patients/{patient_id}."""

    reason: str = Field(default="", max_length=500)


class PatientMerge(BaseModel):
    """POST /api/patients/merge: every study of `source_patient_id` becomes one of
    `target_patient_id`, with the target's demographics."""

    source_patient_id: str = Field(min_length=1, max_length=64)
    target_patient_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=500)


class PatientUpdated(BaseModel):
    """The answer: which studies changed, and to what."""

    kind: Literal["correction", "merge"]
    patient_id: str
    changes: dict[str, str]
    studies: list[str]
