"""What ops watch: Prometheus /metrics of the API, the gateway's open associations, and the
platform's version, uptime, settings in effect (secrets redacted) and parts."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.deps import ServicesDep, require
from api.rest.health import CHECKS, PartState, _check
from infra.auth.permissions import Permission
from infra.metrics import redacted

router = APIRouter(tags=["observability"])

STARTED = time.time()
GATEWAY_TIMEOUT_SECONDS = 2.0


@router.get("/metrics", dependencies=[require(Permission.METRICS_READ)])
async def metrics() -> Response:
    """This process's metrics in the Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class OpenAssociation(BaseModel):
    """One association a gateway process holds open now."""

    calling_ae: str
    address: str
    since: float
    operations: int
    bytes_received: int


@router.get(
    "/api/associations",
    response_model=list[OpenAssociation],
    dependencies=[require(Permission.METRICS_READ)],
)
async def associations(services: ServicesDep) -> list[OpenAssociation]:
    """The DIMSE associations open now, read from each gateway process's metrics port
    (`PACS_METRICS__GATEWAY_PORT` onwards, one per gateway process); 503 when it is off."""
    cfg = services.settings.metrics
    if not cfg.gateway_port:
        raise HTTPException(503, "the gateway serves no metrics: set PACS_METRICS__GATEWAY_PORT")
    ports = range(cfg.gateway_port, cfg.gateway_port + services.settings.dicom.processes)
    rows: list[OpenAssociation] = []
    async with httpx.AsyncClient(timeout=GATEWAY_TIMEOUT_SECONDS) as client:
        answers = await asyncio.gather(
            *(client.get(f"http://{cfg.host}:{port}/associations") for port in ports),
            return_exceptions=True,
        )
    for answer in answers:
        if isinstance(answer, httpx.Response) and answer.status_code == 200:
            rows += [OpenAssociation.model_validate(row) for row in answer.json()]
    return sorted(rows, key=lambda row: row.since)


class SystemInfo(BaseModel):
    """The platform as it runs now."""

    version: str
    uptime_seconds: float
    settings: dict[str, Any]
    parts: dict[str, PartState]


@router.get("/api/system", response_model=SystemInfo, dependencies=[require(Permission.ADMIN)])
async def system(services: ServicesDep) -> SystemInfo:
    """Version, uptime of this API process, every setting in effect (passwords, keys and
    tokens redacted) and the state of each part (as /health/ready checks them)."""
    states = await asyncio.gather(*(_check(services, c) for c in CHECKS.values()))
    return SystemInfo(
        version=version("pacs"),
        uptime_seconds=round(time.time() - STARTED, 1),
        settings=redacted(services.settings.model_dump(mode="json")),
        parts=dict(zip(CHECKS, states, strict=True)),
    )
