from __future__ import annotations

import pytest

from api.multipart import MultipartError, build_multipart, parse_content_type, split_multipart


def test_round_trip_keeps_bytes_exactly() -> None:
    payloads = [b"\r\n--not-a-boundary\r\n", bytes(range(256)), b""]
    body, boundary = build_multipart(("application/dicom", p) for p in payloads)
    parts = split_multipart(body, boundary)
    assert [p.body for p in parts] == payloads
    assert {p.content_type for p in parts} == {"application/dicom"}


def test_content_type_parameters_are_parsed_with_quotes() -> None:
    media, params = parse_content_type('multipart/related; type="application/dicom"; boundary=abc')
    assert media == "multipart/related"
    assert params == {"type": "application/dicom", "boundary": "abc"}


def test_body_without_the_boundary_is_rejected() -> None:
    with pytest.raises(MultipartError):
        split_multipart(b"just bytes", "xyz")
