"""Which attributes the catalog keeps, at which level, in which column.

The list covers the keys PS3.4 Annex C and PS3.18 (QIDO-RS) require for matching and return,
plus what OHIF's study list and viewer ask for. Higher-level attributes are copied down to
every lower-level table, so a series query can match on PatientID without a join.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Level(IntEnum):
    """Query/Retrieve levels, outermost first."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    IMAGE = 3

    @classmethod
    def parse(cls, name: str) -> Level:
        """From a QueryRetrieveLevel value ("INSTANCE" is QIDO's word for IMAGE)."""
        key = name.strip().upper()
        if key == "INSTANCE":
            return cls.IMAGE
        try:
            return cls[key]
        except KeyError:
            raise ValueError(
                f"QueryRetrieveLevel {name!r} is not PATIENT, STUDY, SERIES or IMAGE"
            ) from None


TABLES = {
    Level.PATIENT: "patients",
    Level.STUDY: "studies",
    Level.SERIES: "series",
    Level.IMAGE: "instances",
}


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: str  # 8 hex digits, as DICOM JSON names it
    vr: str
    column: str
    level: Level  # the outermost level whose tables hold it
    # "copied": from the instance header; "derived": computed per level (counts, lists)
    origin: str = "copied"
    # Derived attributes exist only from this level outwards (e.g. study counts at STUDY).
    only_at: Level | None = None

    @property
    def numeric(self) -> bool:
        return self.vr in ("IS", "US", "UL", "SL", "SS")

    def available_at(self, level: Level) -> bool:
        if self.only_at is not None:
            return level == self.only_at
        return self.level <= level


def _column(keyword: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", keyword).lower()


def _a(keyword: str, tag: str, vr: str, level: Level) -> Attribute:
    """Copied from the instance header."""
    return Attribute(keyword, tag, vr, _column(keyword), level)


def _d(keyword: str, tag: str, vr: str, level: Level) -> Attribute:
    """Derived per level: exists only at that level (counts, lists of what is inside)."""
    return Attribute(keyword, tag, vr, _column(keyword), level, origin="derived", only_at=level)


P, S, SE, IM = Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE

ATTRIBUTES: tuple[Attribute, ...] = (
    _a("PatientName", "00100010", "PN", P),
    _a("PatientID", "00100020", "LO", P),
    _a("IssuerOfPatientID", "00100021", "LO", P),
    _a("PatientBirthDate", "00100030", "DA", P),
    _a("PatientSex", "00100040", "CS", P),
    _d("NumberOfPatientRelatedStudies", "00201200", "IS", P),
    _d("NumberOfPatientRelatedSeries", "00201202", "IS", P),
    _d("NumberOfPatientRelatedInstances", "00201204", "IS", P),
    _a("StudyInstanceUID", "0020000D", "UI", S),
    _a("StudyDate", "00080020", "DA", S),
    _a("StudyTime", "00080030", "TM", S),
    _a("AccessionNumber", "00080050", "SH", S),
    _a("StudyID", "00200010", "SH", S),
    _a("StudyDescription", "00081030", "LO", S),
    _a("ReferringPhysicianName", "00080090", "PN", S),
    _a("TimezoneOffsetFromUTC", "00080201", "SH", S),
    # Series-level in the IODs (General Equipment, Patient): kept per study, from its newest
    # instance, because role bindings are scoped by them (infra/auth/scope.py).
    _a("InstitutionName", "00080080", "LO", S),
    _a("PatientIdentityRemoved", "00120062", "CS", S),
    _d("ModalitiesInStudy", "00080061", "CS", S),
    _d("SOPClassesInStudy", "00080062", "UI", S),
    _d("NumberOfStudyRelatedSeries", "00201206", "IS", S),
    _d("NumberOfStudyRelatedInstances", "00201208", "IS", S),
    _a("SeriesInstanceUID", "0020000E", "UI", SE),
    _a("Modality", "00080060", "CS", SE),
    _a("SeriesNumber", "00200011", "IS", SE),
    _a("SeriesDescription", "0008103E", "LO", SE),
    _a("SeriesDate", "00080021", "DA", SE),
    _a("SeriesTime", "00080031", "TM", SE),
    _a("BodyPartExamined", "00180015", "CS", SE),
    _a("PerformedProcedureStepStartDate", "00400244", "DA", SE),
    _a("PerformedProcedureStepStartTime", "00400245", "TM", SE),
    _d("NumberOfSeriesRelatedInstances", "00201209", "IS", SE),
    _a("SOPInstanceUID", "00080018", "UI", IM),
    _a("SOPClassUID", "00080016", "UI", IM),
    _a("InstanceNumber", "00200013", "IS", IM),
    _a("ContentDate", "00080023", "DA", IM),
    _a("ContentTime", "00080033", "TM", IM),
    _a("Rows", "00280010", "US", IM),
    _a("Columns", "00280011", "US", IM),
    _a("BitsAllocated", "00280100", "US", IM),
    _a("NumberOfFrames", "00280008", "IS", IM),
    _a("AvailableTransferSyntaxUID", "00083002", "UI", IM),
)  # fmt: skip

BY_KEYWORD = {a.keyword: a for a in ATTRIBUTES}
BY_TAG = {a.tag: a for a in ATTRIBUTES}
# Attributes copied from each instance's header into the instance table.
COPIED = tuple(a for a in ATTRIBUTES if a.origin == "copied")
# Attributes that are lists of values in their column (Array(String)).
LISTS = {"ModalitiesInStudy", "SOPClassesInStudy"}

# What each level returns when the caller names no keys (PS3.18 Table 10.6.3-3 / OHIF).
DEFAULT_RETURN = {
    level: tuple(a.keyword for a in ATTRIBUTES if a.available_at(level)) for level in Level
}


def first_value(metadata: dict[str, Any], attribute: Attribute) -> str | int | None:
    """The attribute's (first) value from an instance's DICOM JSON, as the column stores it."""
    element = metadata.get(attribute.tag)
    if not element:
        return None
    values = element.get("Value")
    if not values:
        return None
    value = values[0]
    if attribute.vr == "PN":
        return str(value.get("Alphabetic", "")) if isinstance(value, dict) else None
    if attribute.numeric:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if attribute.vr in ("CS", "UI") and len(values) > 1:
        return "\\".join(str(v) for v in values if v is not None)
    return None if value is None else str(value)
