"""STOW-RS streams its body into the accept path: real spool landing, stand-in archive and broker.

The request body is an async generator, so a test sees how far the route has read it.
tests/integration/test_stow_limits.py runs the same limits against the real platform.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from api.deps import Services
from api.dicomweb import stow
from api.identity import Authenticator
from infra.multipart import build_multipart
from infra.settings import HttpSettings, IngestSettings, Settings
from infra.storage.landing import SpoolLanding
from ingest import stow as ingest_stow
from ingest.accept import Acceptor, Origin, Outcome
from tests.dicom_factory import ct_series, part10_bytes
from tests.unit.api.auth import ADMIN, authenticator
from tests.unit.ingest.test_accept import FakeArchive, FakePublisher

REFERENCED = "00081199"
FAILED = "00081198"
FAILURE_REASON = "00081197"
ERROR_COMMENT = "00000902"
SOP_UID = "00081155"


@dataclass
class Node:
    client: httpx.AsyncClient
    acceptor: Acceptor
    publisher: FakePublisher
    landing: SpoolLanding

    def landed(self) -> list[Path]:
        return sorted(self.landing.root.glob("*/*/*.dcm"))


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(**http: Any) -> Node:
        publisher = FakePublisher()
        landing = SpoolLanding(tmp_path / f"spool{len(clients)}")
        acceptor = Acceptor(
            landing,
            FakeArchive(),  # type: ignore[arg-type]
            publisher,  # type: ignore[arg-type]
            IngestSettings(accept_timeout_seconds=5),
            asyncio.get_running_loop(),
        )
        app = FastAPI()
        app.include_router(stow.router)
        settings = Settings(http=HttpSettings(**http))
        app.state.services = cast(Services, _Services(settings, acceptor))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://pacs",
            timeout=30,
            headers=ADMIN,
        )
        clients.append(client)
        return Node(client, acceptor, publisher, landing)

    yield make
    for client in clients:
        await client.aclose()


@dataclass
class _Services:
    settings: Settings
    acceptor: Acceptor
    authenticator: Authenticator = field(default_factory=authenticator)
    recorder: None = None


def headers(boundary: str, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        **extra,
    }


def instances(count: int, size: int = 64) -> list[tuple[str, bytes]]:
    return [(ds.SOPInstanceUID, part10_bytes(ds)) for ds in ct_series(count, size=size)]


async def chunks_of(body: bytes, size: int, sent: list[int] | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        if sent is not None:
            sent.append(start)
        yield body[start : start + size]


def referenced(response: httpx.Response) -> list[str]:
    items = response.json().get(REFERENCED, {}).get("Value", [])
    return [item[SOP_UID]["Value"][0] for item in items]


async def test_parts_are_accepted_while_the_body_is_still_streaming(make_node: Any) -> None:
    node = make_node()
    sent = instances(3)
    body, boundary = build_multipart(("application/dicom", data) for _, data in sent)
    # Up to the third part's content: the first two parts and the delimiter after them.
    cut = body.index(sent[2][1])

    async def body_stream() -> AsyncIterator[bytes]:
        yield body[:cut]
        # The rest is sent only once the first two instances are landed and announced.
        for _ in range(500):
            if len(node.publisher.events) == 2:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the first parts were not accepted before the body ended")
        assert len(node.landed()) == 2
        yield body[cut:]

    response = await node.client.post(
        "/dicom-web/studies", content=body_stream(), headers=headers(boundary)
    )
    assert response.status_code == 200, response.text
    assert referenced(response) == [uid for uid, _ in sent]


async def test_a_declared_length_over_the_maximum_is_413_before_reading(make_node: Any) -> None:
    node = make_node(stow_max_request_bytes=10_000)
    body, boundary = build_multipart(("application/dicom", data) for _, data in instances(2))
    assert len(body) > 10_000
    sent: list[int] = []
    response = await node.client.post(
        "/dicom-web/studies",
        content=chunks_of(body, 1024, sent),
        headers=headers(boundary, **{"Content-Length": str(len(body))}),
    )
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert f"{len(body)} bytes" in detail and "PACS_HTTP__STOW_MAX_REQUEST_BYTES" in detail
    assert "nothing was stored" in detail
    assert response.headers["connection"] == "close"
    assert sent == []  # not a byte of the body was read
    assert node.publisher.events == [] and node.landed() == []


async def test_a_streamed_body_crossing_the_maximum_keeps_and_reports_what_came_before(
    make_node: Any,
) -> None:
    sent = instances(6)
    body, boundary = build_multipart(("application/dicom", data) for _, data in sent)
    # The limit falls inside the fourth part: three parts were complete before it.
    limit = body.index(sent[3][1]) + 2000
    node = make_node(stow_max_request_bytes=limit)
    read: list[int] = []
    response = await node.client.post(
        "/dicom-web/studies", content=chunks_of(body, 1024, read), headers=headers(boundary)
    )
    assert response.status_code == 413, response.text
    assert max(read) < limit + 1024  # reading stopped at the limit
    # What came before the limit is durable, announced and reported; nothing after it.
    assert referenced(response) == [uid for uid, _ in sent[:3]]
    assert len(node.publisher.events) == 3 and len(node.landed()) == 3
    (rest,) = response.json()[FAILED]["Value"]
    assert rest[FAILURE_REASON]["Value"] == [0xA700]
    assert "PACS_HTTP__STOW_MAX_REQUEST_BYTES" in rest[ERROR_COMMENT]["Value"][0]
    assert "PACS_HTTP__STOW_MAX_REQUEST_BYTES" in response.headers["warning"]
    assert response.headers["connection"] == "close"


async def test_a_streamed_body_over_the_maximum_in_its_first_part_stores_nothing(
    make_node: Any,
) -> None:
    node = make_node(stow_max_request_bytes=5000)
    body, boundary = build_multipart(("application/dicom", data) for _, data in instances(1))
    response = await node.client.post(
        "/dicom-web/studies", content=chunks_of(body, 1024), headers=headers(boundary)
    )
    assert response.status_code == 413
    assert "nothing was stored" in response.json()["detail"]
    assert node.publisher.events == [] and node.landed() == []


async def test_a_part_over_the_part_maximum_is_413_after_the_parts_before_it(
    make_node: Any,
) -> None:
    node = make_node(stow_max_part_bytes=20_000)
    small, large = instances(1, size=32)[0], instances(1, size=128)[0]
    assert len(small[1]) < 20_000 < len(large[1])
    body, boundary = build_multipart(
        [("application/dicom", small[1]), ("application/dicom", large[1])]
    )
    response = await node.client.post("/dicom-web/studies", content=body, headers=headers(boundary))
    assert response.status_code == 413, response.text
    assert referenced(response) == [small[0]]
    (rest,) = response.json()[FAILED]["Value"]
    assert "PACS_HTTP__STOW_MAX_PART_BYTES" in rest[ERROR_COMMENT]["Value"][0]
    assert len(node.landed()) == 1


async def test_a_body_cut_short_stores_its_complete_parts_only(make_node: Any) -> None:
    node = make_node()
    sent = instances(3)
    body, boundary = build_multipart(("application/dicom", data) for _, data in sent)
    # The third part ends half way through its pixel data, without a closing delimiter:
    # its header alone would parse, but it must not be stored truncated.
    truncated = body[: body.index(sent[2][1]) + len(sent[2][1]) // 2]
    response = await node.client.post(
        "/dicom-web/studies", content=truncated, headers=headers(boundary)
    )
    assert response.status_code == 400, response.text
    assert referenced(response) == [uid for uid, _ in sent[:2]]
    (rest,) = response.json()[FAILED]["Value"]
    assert "closing multipart delimiter" in rest[ERROR_COMMENT]["Value"][0]
    assert len(node.landed()) == 2
    assert "connection" not in response.headers  # the whole body was read


async def test_a_body_without_parts_is_400(make_node: Any) -> None:
    node = make_node()
    response = await node.client.post(
        "/dicom-web/studies", content=b"no multipart here", headers=headers("xyz")
    )
    assert response.status_code == 400
    assert "no parts found" in response.json()["detail"]


async def test_parts_in_flight_are_bounded_by_bytes_not_by_the_body(
    make_node: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node()
    sent = instances(12, size=128)  # ~33 KB each
    part_size = max(len(data) for _, data in sent)
    monkeypatch.setattr(ingest_stow, "STOW_IN_FLIGHT_BYTES", 2 * part_size, raising=False)
    in_flight: list[int] = []
    peak = 0
    accept = node.acceptor.accept

    async def slow_accept(part10: bytes, origin: Origin, expect_study: str | None = None) -> Any:
        nonlocal peak
        in_flight.append(len(part10))
        peak = max(peak, sum(in_flight))
        await asyncio.sleep(0.02)
        try:
            outcome: Outcome = await accept(part10, origin, expect_study)
            return outcome
        finally:
            in_flight.remove(len(part10))

    monkeypatch.setattr(node.acceptor, "accept", slow_accept)
    body, boundary = build_multipart(("application/dicom", data) for _, data in sent)
    response = await node.client.post(
        "/dicom-web/studies", content=chunks_of(body, 4096), headers=headers(boundary)
    )
    assert response.status_code == 200, response.text
    assert len(referenced(response)) == 12
    # The budget, plus the parts completed by the chunk that crossed it.
    assert peak <= 3 * part_size, (peak, part_size)
