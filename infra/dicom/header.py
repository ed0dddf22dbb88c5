"""Read and validate the few attributes ingest needs, without decoding pixel data."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from infra.dicom.header_json import JsonDataset, header_json
from infra.dicom.statuses import CANNOT_UNDERSTAND, MISSING_IDENTIFIER
from infra.dicom.transfer_syntaxes import NATIVE_SYNTAXES

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_TAGS = [
    Tag(0x0008, 0x0016),  # SOPClassUID
    Tag(0x0008, 0x0018),  # SOPInstanceUID
    Tag(0x0008, 0x0060),  # Modality
    Tag(0x0010, 0x0020),  # PatientID
    Tag(0x0020, 0x000D),  # StudyInstanceUID
    Tag(0x0020, 0x000E),  # SeriesInstanceUID
]


class HeaderError(ValueError):
    """The object cannot be ingested; `code` is the DICOM status, the message the reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class InstanceHeader:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    patient_id: str
    modality: str
    # The DICOM JSON of the header (bulk data as relative BulkDataURIs), when asked for.
    metadata: JsonDataset | None = field(default=None, compare=False)


def validate_uid(name: str, value: str) -> str | None:
    """None when valid, else which rule of PS3.5 9.1 the value breaks."""
    if not value:
        return f"{name} is missing"
    if len(value) > 64:
        return f"{name} is longer than 64 characters"
    if not _UID.match(value):
        return f"{name} {value!r} is not dot-separated digits"
    return None


def bulkdata_path(study: str, series: str, sop: str, tag_path: str) -> str:
    """Where WADO-RS serves a bulk data value, relative to the DICOMweb root."""
    return f"studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag_path}"


def _metadata(ds: Any, transfer_syntax: str, uids: dict[str, str]) -> JsonDataset:
    def uri(tag_path: str) -> str:
        return bulkdata_path(
            uids["StudyInstanceUID"], uids["SeriesInstanceUID"], uids["SOPInstanceUID"], tag_path
        )

    metadata = header_json(ds, uri)
    if "Rows" in ds:
        # Parsing stopped before the pixels; an image has them, served as bulk data.
        encapsulated = transfer_syntax not in NATIVE_SYNTAXES
        wide = int(ds.get("BitsAllocated", 8) or 8) > 8
        vr = "OW" if wide and not encapsulated else "OB"
        metadata["7FE00010"] = {"vr": vr, "BulkDataURI": uri("7FE00010")}
    metadata["00083002"] = {"vr": "UI", "Value": [transfer_syntax]}
    return metadata


def read_header(part10: bytes, metadata: bool = False) -> InstanceHeader:
    """Parse the identifying attributes of a Part-10 object or raise HeaderError.

    With `metadata`, the whole header is parsed once and also returned as DICOM JSON: the
    ingest path stores it so series metadata is never rebuilt from the objects.
    """
    try:
        tags = None if metadata else _TAGS
        ds = dcmread(io.BytesIO(part10), stop_before_pixels=True, specific_tags=tags)
        values = {
            "SOPClassUID": str(ds.get("SOPClassUID", "") or ""),
            "SOPInstanceUID": str(ds.get("SOPInstanceUID", "") or ""),
            "StudyInstanceUID": str(ds.get("StudyInstanceUID", "") or ""),
            "SeriesInstanceUID": str(ds.get("SeriesInstanceUID", "") or ""),
        }
        transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
        patient_id = str(ds.get("PatientID", "") or "")
        modality = str(ds.get("Modality", "") or "")
    except InvalidDicomError as exc:
        raise HeaderError(CANNOT_UNDERSTAND, f"not a DICOM Part-10 object: {exc}") from exc
    except Exception as exc:
        raise HeaderError(CANNOT_UNDERSTAND, f"cannot decode dataset: {exc}") from exc
    for name, value in values.items():
        problem = validate_uid(name, value)
        if problem:
            raise HeaderError(MISSING_IDENTIFIER, problem)
    if not transfer_syntax:
        raise HeaderError(CANNOT_UNDERSTAND, "File Meta has no TransferSyntaxUID")
    described: JsonDataset | None = None
    if metadata:
        try:
            described = _metadata(ds, transfer_syntax, values)
        except Exception as exc:
            raise HeaderError(CANNOT_UNDERSTAND, f"cannot decode dataset: {exc}") from exc
    return InstanceHeader(
        study_instance_uid=values["StudyInstanceUID"],
        series_instance_uid=values["SeriesInstanceUID"],
        sop_instance_uid=values["SOPInstanceUID"],
        sop_class_uid=values["SOPClassUID"],
        transfer_syntax_uid=transfer_syntax,
        patient_id=patient_id,
        modality=modality,
        metadata=described,
    )
