"""Liveness and readiness: is this process up, and can it reach every part it needs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import Services, ServicesDep
from api.identity import Unauthenticated
from infra.eventlog import broker_answers

router = APIRouter(prefix="/health", tags=["health"])

CHECK_TIMEOUT_SECONDS = 5.0


class PartState(BaseModel):
    """One dependency and whether it answered."""

    ok: bool
    detail: str
    latency_ms: float


class Readiness(BaseModel):
    """Overall readiness and (to an authenticated caller) the state of each part."""

    ready: bool
    parts: dict[str, PartState] = {}


async def _object_store(services: Services) -> str:
    buckets = await asyncio.to_thread(services.minio.list_buckets)
    return f"{len(buckets)} buckets at {services.settings.s3.endpoint}"


async def _broker(services: Services) -> str:
    if not await broker_answers(services.settings.kafka):
        raise ConnectionError(f"no answer from {services.settings.kafka.bootstrap_servers}")
    return services.settings.kafka.bootstrap_servers


async def _temporal(services: Services) -> str:
    client = await services.temporal()
    await client.workflow_service.get_system_info(GetSystemInfoRequest())
    return services.settings.temporal.address


async def _security(services: Services) -> str:
    if services.security is not None and not services.security_ready.is_set():
        raise ConnectionError("the user admin is not checked yet (waiting for the read models)")
    return "users and API keys loaded" if services.security is not None else "tokens only"


async def _clickhouse(services: Services) -> str:
    if services.clickhouse is None:
        raise ConnectionError("ClickHouse is not configured in this process")
    await asyncio.to_thread(services.clickhouse.command, "SELECT 1")
    return services.clickhouse.dsn.split("@")[-1]


CHECKS: dict[str, Callable[[Services], Awaitable[str]]] = {
    "object_store": _object_store,
    "broker": _broker,
    "temporal": _temporal,
    "clickhouse": _clickhouse,
    "security": _security,
}


async def _check(services: Services, check: Callable[[Services], Awaitable[str]]) -> PartState:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(services), CHECK_TIMEOUT_SECONDS)
        ok = True
    except Exception as exc:  # noqa: BLE001 - every failure is reported, not raised
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return PartState(
        ok=ok, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 1)
    )


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(request: Request, services: ServicesDep) -> JSONResponse:
    """200 only when the object store, broker, Temporal, ClickHouse and the users all
    answer. Without credentials only `ready` is given: the parts name internal addresses."""
    states = await asyncio.gather(*(_check(services, c) for c in CHECKS.values()))
    body = Readiness(ready=all(s.ok for s in states), parts=dict(zip(CHECKS, states, strict=True)))
    status = 200 if body.ready else 503
    try:
        caller = await services.authenticator.resolve(request)
    except Unauthenticated:
        caller = None
    if caller is None:
        return JSONResponse({"ready": body.ready}, status_code=status)
    return JSONResponse(body.model_dump(), status_code=status)
