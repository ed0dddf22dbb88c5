from __future__ import annotations

import pytest

from infra.dicom.header import HeaderError, read_header, validate_uid
from infra.dicom.statuses import CANNOT_UNDERSTAND, MISSING_IDENTIFIER
from tests.dicom_factory import ct_dataset, part10_bytes


def test_reads_identifiers_without_pixels() -> None:
    ds = ct_dataset("1.2.3", "1.2.3.4", 1, size=8)
    header = read_header(part10_bytes(ds))
    assert header.study_instance_uid == "1.2.3"
    assert header.series_instance_uid == "1.2.3.4"
    assert header.sop_instance_uid == ds.SOPInstanceUID
    assert header.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert header.modality == "CT"


def test_missing_study_uid_is_named_in_the_error() -> None:
    ds = ct_dataset("1.2.3", "1.2.3.4", 1, size=8)
    del ds.StudyInstanceUID
    with pytest.raises(HeaderError) as caught:
        read_header(part10_bytes(ds))
    assert caught.value.code == MISSING_IDENTIFIER
    assert "StudyInstanceUID" in caught.value.reason


def test_garbage_cannot_be_understood() -> None:
    with pytest.raises(HeaderError) as caught:
        read_header(b"\x00" * 300)
    assert caught.value.code == CANNOT_UNDERSTAND


@pytest.mark.parametrize(
    ("value", "rule"),
    [("", "missing"), ("1." * 40, "longer than 64"), ("1.2.abc", "dot-separated digits")],
)
def test_uid_rules(value: str, rule: str) -> None:
    problem = validate_uid("SOPInstanceUID", value)
    assert problem is not None and rule in problem
    assert validate_uid("SOPInstanceUID", "1.2.840.10008.1.2") is None
