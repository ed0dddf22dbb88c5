"""A real platform for the integration tests: servers from PyPI wheels, our processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import (
    AuthSettings,
    DicomSettings,
    FederationSettings,
    HttpSettings,
    IngestSettings,
    KafkaSettings,
    LifecycleSettings,
    MetricsSettings,
    RemoteAE,
    S3Settings,
    Settings,
    TemporalSettings,
)
from infra.stack import LocalStack
from infra.temporal_client import connect_temporal
from tests.login import login

STACK_READY_TIMEOUT = 180.0
# Added to every port base so two checkouts can run their suites side by side.
PORT_SHIFT = int(os.environ.get("PACS_TEST_PORT_SHIFT", "0"))


# C-MOVE destinations that retrieve tests start themselves, by AE title: port offset from
# the DICOM port (DCMTK storescp, a pynetdicom SCP, one that accepts Implicit VR LE only).
MOVE_DESTINATIONS = {"STORESCP": 1, "PYSCP": 2, "IMPLICITSCP": 3}
# The bootstrap admin's password (PACS_AUTH__ADMIN_PASSWORD): tests log in like any client.
ADMIN_PASSWORD = "integration-tests-admin-password"


# The highest port a test stack binds, above its base (SeaweedFS's, metrics, TLS, rsyslog).
HIGHEST_PORT_OFFSET = 9200


def _below_ephemeral_ports(highest: int) -> None:
    """A port in the kernel's ephemeral range may already be some outgoing connection's
    local port; a stack there fails to start at random (CI saw it at 33234)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    assert highest < low, f"test port base too high: {highest} reaches the ephemeral range {low}+"


def platform_settings(data_dir: Path, base: int, **ingest: Any) -> Settings:
    """Settings for a stack whose ports all sit in the `base` range (no clash with `make up`)."""
    base += PORT_SHIFT
    _below_ephemeral_ports(base + HIGHEST_PORT_OFFSET)
    dicom_port = base + 1112
    destinations = {
        title: RemoteAE(host="127.0.0.1", port=dicom_port + offset)
        for title, offset in MOVE_DESTINATIONS.items()
    }
    return Settings(
        data_dir=data_dir,
        dicom=DicomSettings(port=dicom_port, remote_aes=destinations),
        http=HttpSettings(port=base + 8080),
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{base + 9092}"),
        s3=S3Settings(endpoint=f"127.0.0.1:{base + 8333}"),
        temporal=TemporalSettings(address=f"127.0.0.1:{base + 7233}", ui_port=base + 8233),
        auth=AuthSettings(admin_password=ADMIN_PASSWORD),
        metrics=MetricsSettings(
            gateway_port=base + 9100,
            worker_port=base + 9110,
            dispatcher_port=base + 9111,
            workflow_port=base + 9120,  # not 9112: base + 8000 + 1112 is another stack's DICOM port
        ),
        # Health rounds only on demand (POST /api/nodes/check): a scheduled probe of the nodes
        # other tests register would show up in their association and audit counts.
        federation=FederationSettings(health_interval_seconds=0),
        # Long enough to send a deleted study again before its purge, short enough to see it.
        lifecycle=LifecycleSettings(delete_grace_seconds=12),
        ingest=IngestSettings(
            stable_after_seconds=ingest.pop("stable_after_seconds", 3.0),
            orphan_after_seconds=ingest.pop("orphan_after_seconds", 20.0),
            **ingest,
        ),
    )


@dataclass
class Platform:
    settings: Settings
    stack: LocalStack
    # The admin's Authorization header, from logging in once the platform is ready.
    auth: dict[str, str] = field(default_factory=dict)

    @property
    def http(self) -> str:
        return f"http://{self.settings.http.host}:{self.settings.http.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client of the API, logged in as admin."""
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.http, headers=self.auth, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", 30)
        return httpx.AsyncClient(base_url=self.http, headers=self.auth, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET `path` (relative to the API) as admin."""
        kwargs.setdefault("timeout", 30)
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return httpx.get(f"{self.http}{path}", headers=headers, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 30)
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return httpx.post(f"{self.http}{path}", headers=headers, **kwargs)

    @property
    def dicom(self) -> tuple[str, int]:
        return self.settings.dicom.host, self.settings.dicom.port

    async def start(self) -> None:
        await self.stack.start_servers()
        self.stack.start_apps()
        await self.stack.wait_ready(STACK_READY_TIMEOUT)
        configured = self.settings.auth.admin_password
        # Without PACS_AUTH__ADMIN_PASSWORD the platform generated one, as on a first `make up`.
        password = (
            configured.get_secret_value()
            if configured is not None
            else (self.settings.secrets_dir / "admin-password").read_text().strip()
        )
        self.auth = await asyncio.to_thread(login, self.http, "admin", password)

    def audit(self, study: str, event_type: str | None = None) -> list[dict[str, Any]]:
        params = {"StudyInstanceUID": study, "limit": 100_000}
        if event_type:
            params["type"] = event_type
        response = self.get("/api/audit/events", params=params)
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()
        return rows


async def eventually(check: Any, timeout: float, interval: float = 0.5) -> Any:
    """Poll `check` (sync or async, returning a truthy value) until it holds or time runs out."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def dcmtk() -> None:
    if shutil.which("storescu") is None:
        pytest.fail("DCMTK is not installed: run `make test` (it installs Debian's dcmtk)")


@asynccontextmanager
async def running_platform(settings: Settings) -> AsyncIterator[Platform]:
    """A whole platform on its own ports and data dir, stopped cleanly afterwards."""
    node = Platform(settings, LocalStack(settings))
    try:
        await node.start()
        yield node
    finally:
        node.stack.stop_all()


@pytest.fixture(scope="session")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp_path_factory.mktemp("platform"), base=20000)
    async with running_platform(settings) as node:
        yield node


@pytest.fixture(scope="session")
async def temporal_client(platform: Platform) -> Any:
    return await connect_temporal(platform.settings.temporal)


@pytest.fixture(scope="session")
def ct_study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """200 CT images (512x512, 16 bit) of one study, as Part-10 files."""
    from tests.dicom_factory import ct_series, write_series

    yield write_series(tmp_path_factory.mktemp("ct"), ct_series(200))


def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
