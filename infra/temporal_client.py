"""Temporal client factory: one data converter for every process."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from infra.settings import TemporalSettings
from infra.tls.remote import temporal_tls

log = logging.getLogger(__name__)


def prometheus_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime whose SDK core serves its own metrics (workflow and activity task
    latencies, schedule-to-start, poll failures) in the Prometheus format on `bind_address`."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


async def connect_temporal(
    settings: TemporalSettings, attempts: int = 60, runtime: Runtime | None = None
) -> Client:
    """Connect, waiting for a server that is still starting (or restarting after a crash)."""
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(
                settings.address,
                namespace=settings.namespace,
                data_converter=pydantic_data_converter,
                tls=temporal_tls(settings.tls),
                runtime=runtime,
            )
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("Temporal not reachable yet (%r); retry %d/%d", exc, attempt, attempts)
            await asyncio.sleep(1)
    raise AssertionError("unreachable")
