"""DIMSE access control on the real platform with PACS_DICOM__UNKNOWN_AES=deny, driven by
DCMTK: an unregistered AE is rejected at association; a registered node may use the services
it was given and no other; C-MOVE names only the destinations it may."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pydicom
import pytest

from infra.settings import UnknownAePolicy
from tests.dicom_factory import ct_series, write_series
from tests.integration.conftest import (
    MOVE_DESTINATIONS,
    Platform,
    eventually,
    platform_settings,
    run,
    running_platform,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def denying(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp_path_factory.mktemp("deny"), base=22000)
    settings.dicom.unknown_aes = UnknownAePolicy.DENY
    async with running_platform(settings) as node:
        yield node


def dcmtk_tool(
    tool: str, calling: str, node: Platform, *options: str, files: list[Path] | None = None
) -> subprocess.CompletedProcess[str]:
    host, port = node.dicom
    argv = [tool, "-v", "-aet", calling, "-aec", "PACS", *options, host, str(port)]
    return run([*argv, *map(str, files or [])], timeout=60)


def register(node: Platform, name: str, **fields: object) -> None:
    body = {"host": "127.0.0.1", "port": 104, **fields}
    response = node.client().put(f"/api/nodes/{name}", json=body)
    assert response.status_code == 200, response.text


async def test_registry_decides_who_may_do_what(
    denying: Platform, dcmtk: None, tmp_path: Path
) -> None:
    files = write_series(tmp_path / "ct", ct_series(2))
    refused = dcmtk_tool("echoscu", "STRANGER", denying)
    assert refused.returncode != 0
    assert (
        "Association Rejected" in refused.stderr
        and "Calling AE Title Not Recognized" in refused.stderr
    )

    register(denying, "ct-1", ae_title="CT1", services=["echo", "store"])
    register(
        denying, "ws-2", ae_title="WS2", services=["find", "move"], move_destinations=["STORESCP"]
    )

    # The gateway refreshes its copy of the registry every few seconds.
    async def admitted() -> bool:
        return (await asyncio.to_thread(dcmtk_tool, "echoscu", "CT1", denying)).returncode == 0

    await eventually(admitted, timeout=30)
    stored = dcmtk_tool("storescu", "CT1", denying, files=files)
    assert stored.returncode == 0, stored.stderr
    study = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    query = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    not_for_ct = dcmtk_tool("findscu", "CT1", denying, "-S", *query)
    # 0x0124 Refused: Not authorized (DCMTK 3.6.7 prints it as an unknown status)
    assert "Status: 0x124" in not_for_ct.stderr, not_for_ct.stderr
    moved = dcmtk_tool("movescu", "CT1", denying, "-S", "-aem", "STORESCP", *query)
    assert "Refused: MoveDestinationUnknown" in moved.stderr, moved.stderr

    elsewhere = dcmtk_tool("movescu", "WS2", denying, "-S", "-aem", "IMPLICITSCP", *query)
    assert "Refused: MoveDestinationUnknown" in elsewhere.stderr
    no_store = dcmtk_tool("storescu", "WS2", denying, files=files)
    assert "0x0124" in no_store.stderr or "0x124" in no_store.stderr, no_store.stderr

    # The permitted move goes through to a DCMTK storescp.
    out = tmp_path / "received"
    out.mkdir()
    port = denying.settings.dicom.port + MOVE_DESTINATIONS["STORESCP"]
    storescp = subprocess.Popen(  # noqa: ASYNC220 - a server for the whole test
        ["storescp", "-aet", "STORESCP", "-od", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)

        async def delivered() -> bool:
            await asyncio.to_thread(
                dcmtk_tool, "movescu", "WS2", denying, "-S", "-aem", "STORESCP", *query
            )
            return len(list(out.iterdir())) == 2

        await eventually(delivered, timeout=60, interval=2)
    finally:
        storescp.terminate()
        storescp.wait(timeout=10)
