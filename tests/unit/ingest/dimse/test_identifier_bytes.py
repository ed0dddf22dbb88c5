"""C-FIND responses written straight to bytes must be the bytes pydicom/pynetdicom write."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode

from ingest.dimse.find import response_identifier
from ingest.dimse.find_responder import C_FIND_RSP as COMMAND_FIELD
from ingest.dimse.find_responder import DATASET_PRESENT, NO_DATASET, _pdvs
from ingest.dimse.identifier_bytes import command_set_bytes, identifier_bytes

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def _request(**keys: Any) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return query


def _value(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)}


CASES: list[tuple[Dataset, dict[str, Any]]] = [
    # Every key filled, PN as the catalog holds it, an odd-length UI, numbers.
    (
        _request(
            PatientName="",
            PatientID="",
            StudyInstanceUID="",
            StudyDate="",
            ModalitiesInStudy="",
            NumberOfStudyRelatedInstances="",
        ),
        {
            "00100010": _value("PN", {"Alphabetic": "DOE^JANE"}),
            "00100020": _value("LO", "P-1"),
            "0020000D": _value("UI", "1.2.3.45"),
            "00080020": _value("DA", "20250102"),
            "00080061": _value("CS", "CT", "MR"),
            "00201208": _value("IS", 201),
        },
    ),
    # Keys the catalog has no value for, an empty sequence, US and SS, a private element.
    (
        _request(
            PatientBirthDate="",
            ReferencedStudySequence=[],
            Rows=None,
            StudyDescription="",
            SpecificCharacterSet="",
        ),
        {"00280010": _value("US", 512), "00081030": _value("LO", "odd")},
    ),
    # Several values of a UI, an IS given as text, an empty value list.
    (
        _request(SOPClassesInStudy="", NumberOfStudyRelatedSeries="", AccessionNumber=""),
        {
            "00080062": _value("UI", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"),
            "00201206": _value("IS", "3"),
            "00080050": {"vr": "SH"},
        },
    ),
]


@pytest.mark.parametrize("explicit", [True, False])
@pytest.mark.parametrize(("request_keys", "match"), CASES)
def test_identifier_bytes_are_what_pydicom_writes(
    request_keys: Dataset, match: dict[str, Any], explicit: bool
) -> None:
    request_keys.add_new(0x00091010, "LO", "")  # a private key: returned empty
    expected = encode(response_identifier(request_keys, match, "STUDY"), not explicit, True)
    assert identifier_bytes(request_keys, match, "STUDY", explicit) == expected


@pytest.mark.parametrize(
    "match",
    [
        {"00100010": _value("PN", {"Alphabetic": "MÜLLER^JÖRG"})},  # needs a character set
        {"00100010": _value("PN", {"Alphabetic": "A"}), "00181050": _value("DS", 0.5)},
        {"00280010": _value("US", 70000)},  # out of range for US
    ],
)
def test_what_is_not_plain_goes_back_to_pydicom(match: dict[str, Any]) -> None:
    request_keys = _request(PatientName="", SpatialResolution="", Rows=None)
    assert identifier_bytes(request_keys, match, "STUDY", explicit=True) is None


@pytest.mark.parametrize("with_dataset", [True, False])
def test_command_set_is_what_pynetdicom_writes(with_dataset: bool) -> None:
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = 7
    primitive.AffectedSOPClassUID = STUDY_ROOT_FIND
    primitive.Status = 0xFF00 if with_dataset else 0x0000
    if with_dataset:
        from io import BytesIO

        primitive.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    expected = encode(message.command_set, True, True)
    ours = command_set_bytes(
        [
            (0x00000002, "UI", STUDY_ROOT_FIND),
            (0x00000100, "US", COMMAND_FIELD),
            (0x00000120, "US", 7),
            (0x00000800, "US", DATASET_PRESENT if with_dataset else NO_DATASET),
            (0x00000900, "US", primitive.Status),
        ]
    )
    assert ours == expected


def test_fragments_fit_the_peer_pdu_and_mark_the_last() -> None:
    data = bytes(range(250))
    pdvs = _pdvs(3, 0, data, max_pdu=106)
    assert [len(fragment) - 1 for _, fragment in pdvs] == [100, 100, 50]
    assert [fragment[0] for _, fragment in pdvs] == [0, 0, 2]
    assert b"".join(fragment[1:] for _, fragment in pdvs) == data
    ((context, whole),) = _pdvs(3, 1, data, max_pdu=0)
    assert context == 3 and whole == b"\x03" + data
