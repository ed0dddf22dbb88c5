"""Generated bad STOW-RS bodies: a 4xx with a reason, never a 5xx, and nothing stored that
the answer does not report as stored. bench/fuzz_gateway.py fuzzes the DICOM port."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from infra.multipart import MultipartError, MultipartReader, PartTooLarge, build_multipart
from tests.dicom_factory import ct_dataset, part10_bytes
from tests.unit.api.dicomweb.test_stow import headers, make_node, referenced

__all__ = ["make_node"]  # the fixture, shared with test_stow.py


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(
    body=st.binary(max_size=600)
    | st.builds(lambda b: build_multipart([("a/b", b)])[0], st.binary()),
    boundary=st.text("abcdef0123456789-'()+_,./:=? ", min_size=1, max_size=70),
    chunk=st.integers(min_value=1, max_value=700),
)
def test_the_reader_only_ever_raises_its_own_errors(body: bytes, boundary: str, chunk: int) -> None:
    try:
        reader = MultipartReader(boundary, max_part_bytes=256)
        for start in range(0, len(body), chunk):
            reader.feed(body[start : start + chunk])
        reader.close()
    except (MultipartError, PartTooLarge):
        pass  # the two errors the STOW route turns into 400 and 413


KINDS = ["dicom-noise", "dicom-cut", "no-dicm", "frame-flip", "frame-cut", "noise"]


def bad_body(rng: random.Random, number: int) -> tuple[str, bytes, str]:
    """(kind, body, boundary) with the multipart framing or the DICOM part broken."""
    # A new instance each time: a re-sent one would land on the same object, unseen.
    valid = part10_bytes(ct_dataset("1.2.826.0.1.1", "1.2.826.0.1.2", number, size=16))
    part = valid
    kind = rng.choice(KINDS)
    if kind == "dicom-noise":
        part = rng.randbytes(rng.randrange(1, 400))
    elif kind == "dicom-cut":
        part = valid[: rng.randrange(1, 400)]  # ends inside the meta or the first elements
    elif kind == "no-dicm":
        part = valid[:128] + b"DICX" + valid[132:]
    body, boundary = build_multipart([("application/dicom", part)])
    if kind == "frame-flip":
        # A byte of a delimiter or of the part's headers (not of its content) changed.
        head = body.index(b"\r\n\r\n")
        tail = len(body) - len(boundary) - 8
        at = rng.choice([rng.randrange(0, head), rng.randrange(tail, len(body))])
        body = body[:at] + bytes([body[at] ^ (1 << rng.randrange(8)) or 1]) + body[at + 1 :]
    elif kind == "frame-cut":
        body = body[: rng.randrange(0, len(body))]
    elif kind == "noise":
        body = rng.randbytes(rng.randrange(0, 800))
    return kind, body, boundary


async def test_bad_bodies_get_a_4xx_with_a_reason_and_nothing_unreported_is_stored(
    make_node: Any,
) -> None:
    node = make_node(stow_max_part_bytes=1 << 20)
    rng = random.Random(16)
    seen: Counter[tuple[str, int]] = Counter()
    for number in range(1, 401):
        kind, body, boundary = bad_body(rng, number)
        before = len(node.landed())
        response = await node.client.post(
            "/dicom-web/studies", content=body, headers=headers(boundary)
        )
        stored = len(node.landed()) - before
        assert response.status_code != 404, "the route was not reached"
        seen[kind, response.status_code] += 1
        assert response.status_code < 500, f"{kind}: {response.status_code} {response.text}"
        what = f"{kind}: {response.status_code} {response.text[:200]}"
        # Stored exactly what the answer reports as stored: never a success for lost bytes.
        reported = len(referenced(response)) if response.status_code < 400 else 0
        assert stored == reported, what
        if kind != "frame-flip":  # a flipped byte may leave a valid body (a header's case)
            assert response.status_code >= 400, what
        if response.status_code >= 400:
            assert response.text.strip(), f"{kind}: {response.status_code} without a reason"
    # Every kind of breakage was tried, and the answers were refusals.
    assert {kind for kind, _ in seen} == set(KINDS), seen
