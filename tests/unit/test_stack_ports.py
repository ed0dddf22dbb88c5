"""The integration tests' stacks: no port of one is a port of another that runs beside it.

The session platform (base 20000) runs through the whole suite while each module starts its
own stack on another base; a shared port makes a process fail to start (the worker's Temporal
metrics once landed on base + 9112 = another base's DICOM port, 8000 apart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings
from infra.stack.servers import TEMPORAL_HTTP_OFFSET, TEMPORAL_METRICS_OFFSET, weed_ports
from tests.integration.conftest import platform_settings

SESSION_BASE = 20000
MODULE_BASES = (12000, 14000, 16000, 18000, 22000)
# Ports some modules add on top of platform_settings (TLS listeners, rsyslog receivers).
EXTRA_OFFSETS = (2762, 8443, 514, 515)


def ports(settings: Settings, base: int) -> set[int]:
    temporal = int(settings.temporal.address.rsplit(":", 1)[1])
    s3 = int(settings.s3.endpoint.rsplit(":", 1)[1])
    metrics = settings.metrics
    found = {
        settings.dicom.port,
        settings.http.port,
        int(settings.kafka.bootstrap_servers.rsplit(":", 1)[1]),
        s3,
        *weed_ports(s3).values(),
        temporal,
        temporal + TEMPORAL_HTTP_OFFSET,
        temporal + TEMPORAL_METRICS_OFFSET,
        settings.temporal.ui_port,
        metrics.gateway_port,
        metrics.worker_port,
        metrics.dispatcher_port,
        metrics.workflow_port,
        *(remote.port for remote in settings.dicom.remote_aes.values()),
        *(base + offset for offset in EXTRA_OFFSETS),
    }
    return found - {0}


@pytest.mark.parametrize("base", MODULE_BASES)
def test_a_module_stack_shares_no_port_with_the_session_platform(base: int) -> None:
    session = ports(platform_settings(Path("s"), SESSION_BASE), SESSION_BASE)
    module = ports(platform_settings(Path("m"), base), base)
    assert session & module == set()
