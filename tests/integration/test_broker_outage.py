"""A broker that stops answering must turn into failure statuses, never into success."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

from infra.multipart import build_multipart
from tests.dicom_factory import ct_series, part10_bytes
from tests.integration.conftest import (
    Platform,
    eventually,
    platform_settings,
    running_platform,
)
from tests.integration.dimse_client import send_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def outage_platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = platform_settings(
        tmp_path_factory.mktemp("outage"), base=12000, accept_timeout_seconds=3.0
    )
    async with running_platform(settings) as node:
        yield node


@contextmanager
def broker_frozen(platform: Platform) -> Iterator[None]:
    """SIGSTOP the broker: connections stay open but nothing is answered (worse than a crash)."""
    (tansu,) = [p for p in platform.stack.server_processes() if p.name == "tansu"]
    assert tansu.pid is not None
    os.kill(tansu.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(tansu.pid, signal.SIGCONT)


async def test_dimse_and_stow_answer_failure_while_the_broker_hangs(
    outage_platform: Platform,
) -> None:
    platform = outage_platform
    with broker_frozen(platform):
        (ds,) = ct_series(1, size=32)
        acked: list[str] = []
        assert send_all(platform.dicom, [ds], acked, threading.Lock()) == [0xA700]
        assert acked == []

        (other,) = ct_series(1, size=32)
        body, boundary = build_multipart([("application/dicom", part10_bytes(other))])
        response = platform.post(
            "/dicom-web/studies",
            content=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
            },
            timeout=30,
        )
        assert response.status_code == 503, response.text
        failure = response.json()["00081198"]["Value"][0]
        assert failure["00081197"]["Value"] == [0xA700]

    # Once the broker answers again, the same instance is accepted.
    def stored_after_recovery() -> bool:
        return send_all(platform.dicom, [ds], acked, threading.Lock()) == []

    await eventually(stored_after_recovery, timeout=60, interval=2)
    assert acked == [ds.SOPInstanceUID]
