"""Query/Retrieve identifiers from `-k Keyword=value` options, and the information models."""

from __future__ import annotations

from enum import StrEnum

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from infra.scu.peer import ScuError


class Level(StrEnum):
    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


class Root(StrEnum):
    PATIENT = "patient"
    STUDY = "study"


MODELS = {
    (Root.PATIENT, "find"): PatientRootQueryRetrieveInformationModelFind,
    (Root.PATIENT, "move"): PatientRootQueryRetrieveInformationModelMove,
    (Root.PATIENT, "get"): PatientRootQueryRetrieveInformationModelGet,
    (Root.STUDY, "find"): StudyRootQueryRetrieveInformationModelFind,
    (Root.STUDY, "move"): StudyRootQueryRetrieveInformationModelMove,
    (Root.STUDY, "get"): StudyRootQueryRetrieveInformationModelGet,
}


def build_identifier(level: Level, keys: list[str]) -> Dataset:
    """`PatientID=123` matches, a bare `PatientName` asks for it back; `a\\b` is a list."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level.value
    for item in keys:
        keyword, _, value = item.partition("=")
        keyword = keyword.strip()
        if tag_for_keyword(keyword) is None:
            raise ScuError(f"-k {item!r}: {keyword!r} is not a DICOM keyword")
        if dictionary_VR(keyword) == "SQ":
            raise ScuError(f"-k {item!r}: sequence keys are not supported")
        setattr(identifier, keyword, value.split("\\") if "\\" in value else value)
    return identifier
