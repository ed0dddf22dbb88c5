from __future__ import annotations

import pytest

from infra.multipart import (
    MultipartError,
    MultipartReader,
    PartTooLarge,
    build_multipart,
    parse_content_type,
    split_multipart,
)


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


# -- streaming: MultipartReader ------------------------------------------------------------

PAYLOADS = [b"\r\n--not-a-boundary\r\n", bytes(range(256)) * 40, b"", b"\r\n\r\n-", b"x" * 5000]


def read_in_chunks(body: bytes, boundary: str, size: int) -> list[bytes]:
    reader = MultipartReader(boundary)
    parts: list[bytes] = []
    for start in range(0, len(body), size):
        parts += [p.body for p in reader.feed(body[start : start + size])]
    reader.close()
    return parts


@pytest.mark.parametrize("size", [1, 2, 3, 7, 31, 32, 33, 34, 35, 64, 1000, 4096, 1 << 20])
def test_any_chunking_gives_the_same_parts(size: int) -> None:
    # Delimiters split across chunks at every offset (the boundary is 32 hex characters).
    body, boundary = build_multipart(("application/dicom", p) for p in PAYLOADS)
    assert read_in_chunks(body, boundary, size) == PAYLOADS


def test_a_part_is_handed_back_as_soon_as_its_delimiter_arrives() -> None:
    body, boundary = build_multipart([("application/dicom", b"first"), ("a/b", b"second")])
    first_end = body.index(b"second")
    reader = MultipartReader(boundary)
    got = reader.feed(body[:first_end])
    assert [(p.content_type, p.body) for p in got] == [("application/dicom", b"first")]
    got = reader.feed(body[first_end:])
    assert [(p.content_type, p.body) for p in got] == [("a/b", b"second")]
    reader.close()


def test_preamble_and_epilogue_are_skipped() -> None:
    body, boundary = build_multipart([("application/dicom", b"data")])
    body = b"This is a preamble.\r\n" + body + b"an epilogue\r\n"
    for size in (1, 5, len(body)):
        assert read_in_chunks(body, boundary, size) == [b"data"]


def test_part_headers_are_read_case_insensitively() -> None:
    boundary = "b0undary"
    body = (
        b"--b0undary\r\nContent-ID: <1>\r\ncontent-type:  application/dicom \r\n\r\nA\r\n"
        b"--b0undary\r\n\r\nB\r\n--b0undary--"
    )
    parts = split_multipart(body, boundary)
    assert [(p.content_type, p.body) for p in parts] == [("application/dicom", b"A"), ("", b"B")]


def test_a_part_over_the_maximum_is_refused_while_it_streams_in() -> None:
    body, boundary = build_multipart([("application/dicom", b"ok"), ("x", b"y" * 10_000)])
    reader = MultipartReader(boundary, max_part_bytes=1000)
    with pytest.raises(PartTooLarge):
        for start in range(0, len(body), 512):
            reader.feed(body[start : start + 512])
    assert PartTooLarge(1000).limit == 1000


def test_parts_completed_before_a_problem_in_the_same_chunk_are_still_handed_back() -> None:
    body, boundary = build_multipart([("application/dicom", b"ok"), ("x", b"y" * 10_000)])
    reader = MultipartReader(boundary, max_part_bytes=1000)
    assert [p.body for p in reader.feed(body)] == [b"ok"]
    with pytest.raises(PartTooLarge):
        reader.check()
    with pytest.raises(PartTooLarge):
        reader.close()


def test_a_body_without_its_closing_delimiter_is_incomplete() -> None:
    body, boundary = build_multipart([("application/dicom", b"one"), ("application/dicom", b"t")])
    truncated = body[: body.rindex(b"--" + boundary.encode() + b"--")]
    reader = MultipartReader(boundary)
    assert [p.body for p in reader.feed(truncated)] == [b"one"]
    with pytest.raises(MultipartError, match="closing multipart delimiter"):
        reader.close()


def test_a_malformed_part_header_is_a_multipart_error() -> None:
    reader = MultipartReader("xyz")
    assert reader.feed(b"--xyz\r\nnot a header\r\n\r\nbody\r\n--xyz--") == []
    with pytest.raises(MultipartError, match="malformed"):
        reader.check()


def test_a_body_that_never_shows_the_boundary_is_refused_early() -> None:
    reader = MultipartReader("xyz")
    with pytest.raises(MultipartError, match="no multipart delimiter"):
        for _ in range(100):
            reader.feed(b"a" * 4096)


def test_an_empty_multipart_body_has_no_parts() -> None:
    with pytest.raises(MultipartError, match="no parts"):
        split_multipart(b"--xyz--\r\n", "xyz")
