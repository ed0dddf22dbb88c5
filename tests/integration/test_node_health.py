"""Node health on the real platform: rounds of C-ECHO (and QIDO) probes against DCMTK's
`storescp` as the peer, their events, the node API's health and the status history, and the
Temporal Schedule that runs the rounds on its own."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from apps.schedules import ensure_node_health_schedule
from tests.integration.conftest import Platform, eventually
from workflows.node_health import SCHEDULE_ID

pytestmark = pytest.mark.integration


class Peer:
    """DCMTK `storescp` on a port of its own: it answers C-ECHO as any SCP does."""

    def __init__(self, workdir: Path, ae_title: str) -> None:
        self.workdir = workdir
        self.ae_title = ae_title
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["storescp", "-aet", self.ae_title, "-od", str(self.workdir), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("storescp did not listen")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def peer(tmp_path: Path, dcmtk: None) -> Iterator[Peer]:
    scp = Peer(tmp_path / "scp", "HEALTHSCP")
    scp.start()
    try:
        yield scp
    finally:
        scp.stop()


def register(node: Platform, name: str, peer: Peer, **fields: object) -> None:
    body = {"ae_title": peer.ae_title, "host": "127.0.0.1", "port": peer.port} | fields
    response = node.client().put(f"/api/nodes/{name}", json=body)
    assert response.status_code == 200, response.text


def health(node: Platform, name: str) -> dict[str, Any] | None:
    response = node.get(f"/api/nodes/{name}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] | None = response.json()["health"]
    return found


def check_now(node: Platform) -> int:
    response = node.post("/api/nodes/check", timeout=120)
    assert response.status_code == 200, response.text
    checked: int = response.json()["nodes_checked"]
    return checked


async def checked_after(node: Platform, name: str, after: str | None) -> dict[str, Any]:
    """The node's health once a check newer than `after` is applied."""

    def newer() -> dict[str, Any] | None:
        found = health(node, name)
        return found if found and (after is None or found["checked_at"] > after) else None

    result: dict[str, Any] = await eventually(newer, timeout=30)
    return result


async def test_a_node_goes_down_and_comes_back_and_its_history_says_so(
    platform: Platform, peer: Peer
) -> None:
    register(platform, "health-peer", peer)
    # The same SCP as a DICOMweb node too: its QIDO URL is our own DICOMweb root, which
    # answers 401 without credentials, so that node is reachable by one way of two.
    # (AE titles are unique in the registry; storescp answers whatever it is called.)
    web_root = f"{platform.http}/dicom-web"
    register(platform, "health-web", peer, ae_title="HEALTHWEB", dicomweb_url=web_root)
    register(platform, "health-off", peer, ae_title="HEALTHOFF", health_check=False)

    assert check_now(platform) >= 2
    up = await checked_after(platform, "health-peer", None)
    assert up["status"] == "up"
    assert up["rtt_ms"] is not None and 0 < up["rtt_ms"] < 5000
    assert up["last_success"] == up["checked_at"] and up["since"] == up["checked_at"]
    assert [p["kind"] for p in up["probes"]] == ["c-echo"]
    web = await checked_after(platform, "health-web", None)
    assert web["status"] == "degraded"
    qido = next(p for p in web["probes"] if p["kind"] == "qido")
    assert not qido["ok"] and "401" in qido["error"]
    assert health(platform, "health-off") is None  # never probed

    peer.stop()
    check_now(platform)
    down = await checked_after(platform, "health-peer", up["checked_at"])
    assert down["status"] == "down"
    assert down["last_success"] == up["checked_at"]  # the last time it answered
    assert down["since"] == down["checked_at"]
    assert down["rtt_ms"] is None and "c-echo" in down["probes"][0]["kind"]
    assert down["probes"][0]["error"]  # why: the connection was refused

    # A second round while it is still down: no new status, `since` stays.
    check_now(platform)
    still = await checked_after(platform, "health-peer", down["checked_at"])
    assert still["status"] == "down" and still["since"] == down["since"]

    peer.start()
    check_now(platform)
    back = await checked_after(platform, "health-peer", still["checked_at"])
    assert back["status"] == "up" and back["since"] == back["checked_at"]

    history = platform.get("/api/nodes/health-peer/history").json()
    assert [(h["status"], h["previous"]) for h in history] == [
        ("up", "down"),
        ("down", "up"),
        ("up", None),
    ]
    assert "c-echo" in history[1]["reason"]

    listed = {n["name"]: n for n in platform.get("/api/nodes").json()}
    assert listed["health-peer"]["health"]["status"] == "up"
    for name in ("health-peer", "health-web", "health-off"):
        assert platform.client().delete(f"/api/nodes/{name}").status_code == 204
    await eventually(lambda: platform.get("/api/nodes/health-peer").status_code == 404, 30)
    assert platform.get("/api/nodes/health-peer/history").status_code == 404


async def test_the_schedule_runs_rounds_on_its_own_and_goes_when_turned_off(
    platform: Platform, peer: Peer, temporal_client: Client
) -> None:
    register(platform, "health-sched", peer, ae_title="HEALTHSCHED")
    settings = platform.settings.model_copy(deep=True)
    settings.federation.health_interval_seconds = 1
    await ensure_node_health_schedule(temporal_client, settings)
    try:
        first = await checked_after(platform, "health-sched", None)
        second = await checked_after(platform, "health-sched", first["checked_at"])
        assert second["status"] == "up"
        described = await temporal_client.get_schedule_handle(SCHEDULE_ID).describe()
        assert described.info.num_actions >= 2
        # Made again (a worker restart): updated in place, not an error.
        await ensure_node_health_schedule(temporal_client, settings)
    finally:
        settings.federation.health_interval_seconds = 0
        await ensure_node_health_schedule(temporal_client, settings)
    with pytest.raises(RPCError):
        await temporal_client.get_schedule_handle(SCHEDULE_ID).describe()
    assert platform.client().delete("/api/nodes/health-sched").status_code == 204


async def test_a_dicomweb_node_that_wants_a_key_is_probed_with_the_one_kept_sealed(
    platform: Platform, peer: Peer
) -> None:
    """Our own DICOMweb root as the node's: without a key its QIDO probe is refused (401),
    with one it answers. Saving the node again without a key keeps it; "" removes it."""
    name = "keyed-web"
    web = {"dicomweb_url": f"{platform.http}/dicom-web"}
    key = platform.post("/api/api-keys", json={"name": "probe", "roles": ["integration"]})
    assert key.status_code == 201, key.text
    secret = key.json()["api_key"]
    try:
        register(platform, name, peer, **web)
        check_now(platform)
        found = await checked_after(platform, name, None)
        qido = next(p for p in found["probes"] if p["kind"] == "qido")
        assert (found["status"], qido["ok"]) == ("degraded", False) and "401" in qido["error"]

        register(platform, name, peer, **web, api_key=secret)
        sealed = platform.get(f"/api/nodes/{name}").json()["api_key_sealed"]
        assert sealed and secret not in sealed
        register(platform, name, peer, **web)  # no key given: the one kept stays
        assert platform.get(f"/api/nodes/{name}").json()["api_key_sealed"] == sealed
        check_now(platform)
        found = await checked_after(platform, name, found["checked_at"])
        assert found["status"] == "up", found

        register(platform, name, peer, **web, api_key="")
        assert platform.get(f"/api/nodes/{name}").json()["api_key_sealed"] == ""
    finally:
        platform.client().delete(f"/api/nodes/{name}")
