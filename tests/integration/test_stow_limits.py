"""STOW-RS size limits over real HTTP: 413 with a reason, and nothing stored is ever unsaid.

A platform of its own with small limits (8 MiB a request, 4 MiB a part); the client streams
its bodies from disk and is still sending when the server refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dicom_factory import ct_series, write_series
from tests.integration.conftest import Platform, eventually, platform_settings, running_platform
from tests.integration.stow_stream import StreamedBody, write_multiframe_series

pytestmark = pytest.mark.integration

MAX_REQUEST = 8 * 1024 * 1024
MAX_PART = 4 * 1024 * 1024
REFERENCED = "00081199"
FAILED = "00081198"


@pytest.fixture(scope="module")
async def limited(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp_path_factory.mktemp("limits"), base=14000)
    http = settings.http.model_copy(
        update={"stow_max_request_bytes": MAX_REQUEST, "stow_max_part_bytes": MAX_PART}
    )
    async with running_platform(settings.model_copy(update={"http": http})) as node:
        yield node


def post(platform: Platform, body: StreamedBody, declare_length: bool) -> httpx.Response:
    headers = {"Content-Type": body.content_type, "Accept": "application/dicom+json"}
    if declare_length:
        headers["Content-Length"] = str(len(body))
    return platform.post("/dicom-web/studies", content=iter(body), headers=headers, timeout=120)


def ct_files(folder: Path, count: int) -> tuple[str, list[Path]]:
    datasets = list(ct_series(count))  # 512 x 512 x 16 bit: ~0.5 MiB each
    return datasets[0].StudyInstanceUID, write_series(folder, iter(datasets))


def landed_sops(platform: Platform, study: str) -> set[str]:
    folder = platform.stack.settings.spool_dir / "landing" / study
    return {p.name.split(".dcm")[0].rsplit(".", 1)[0] for p in folder.glob("*/*.dcm")}


def referenced(response: httpx.Response) -> list[str]:
    items = response.json().get(REFERENCED, {}).get("Value", [])
    return [item["00081155"]["Value"][0] for item in items]


async def test_a_declared_length_over_the_maximum_is_refused_before_reading(
    limited: Platform, tmp_path: Path
) -> None:
    study, paths = ct_files(tmp_path, 20)
    body = StreamedBody(paths)
    assert len(body) > MAX_REQUEST
    response = await asyncio.to_thread(post, limited, body, True)
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert f"{len(body)} bytes" in detail and "PACS_HTTP__STOW_MAX_REQUEST_BYTES" in detail
    assert "nothing was stored" in detail
    await asyncio.sleep(1)
    assert landed_sops(limited, study) == set()
    assert limited.audit(study) == []


async def test_a_streamed_body_over_the_maximum_keeps_and_reports_what_came_before(
    limited: Platform, tmp_path: Path
) -> None:
    study, paths = ct_files(tmp_path, 20)
    body = StreamedBody(paths)
    response = await asyncio.to_thread(post, limited, body, False)
    assert response.status_code == 413, response.text
    stored = referenced(response)
    # Every part that ended before the limit was stored; none after it.
    assert 10 <= len(stored) < 16, len(stored)
    assert stored == [p.stem for p in paths[: len(stored)]]
    (rest,) = response.json()[FAILED]["Value"]
    assert rest["00081197"]["Value"] == [0xA700]
    assert "PACS_HTTP__STOW_MAX_REQUEST_BYTES" in rest["00000902"]["Value"][0]
    assert "PACS_HTTP__STOW_MAX_REQUEST_BYTES" in response.headers["warning"]

    # What the response lists was announced, and nothing else ever is.
    def announced() -> set[str] | None:
        events = limited.audit(study, "pacs.instance.received")
        sops = {e["sop_instance_uid"] for e in events}
        return sops if len(sops) >= len(stored) else None

    assert await eventually(announced, timeout=30) == set(stored)
    await asyncio.sleep(2)
    assert announced() == set(stored)


async def test_a_part_over_the_part_maximum_is_refused_after_the_parts_before_it(
    limited: Platform, tmp_path: Path
) -> None:
    (first,) = write_multiframe_series(tmp_path / "small", 1, frames=2)
    (large,) = write_multiframe_series(tmp_path / "large", 1, frames=10)  # 5 MiB
    body = StreamedBody([first, large])
    assert len(body) < MAX_REQUEST
    response = await asyncio.to_thread(post, limited, body, True)
    assert response.status_code == 413, response.text
    assert referenced(response) == [first.stem]
    (rest,) = response.json()[FAILED]["Value"]
    assert "PACS_HTTP__STOW_MAX_PART_BYTES" in rest["00000902"]["Value"][0]


async def test_requests_within_the_limits_still_store_everything(
    limited: Platform, tmp_path: Path
) -> None:
    _, paths = ct_files(tmp_path, 6)
    for declare_length in (True, False):
        body = StreamedBody(paths)
        response: Any = await asyncio.to_thread(post, limited, body, declare_length)
        assert response.status_code == 200, response.text
        assert referenced(response) == [p.stem for p in paths]
