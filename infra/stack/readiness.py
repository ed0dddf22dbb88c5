"""When the local stack counts as up: health checks for each server, the wait for a
started process to pass its check, the buckets and topic our apps expect before they
start, and the wait for the apps' `/health/ready`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import httpx
import urllib3
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from minio import Minio
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from infra.settings import KafkaSettings, S3Settings, TemporalSettings
from infra.stack.errors import StackError
from infra.stack.processes import ManagedProcess
from infra.tls.remote import kafka_options, s3_http_client, temporal_tls

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 60.0
HEALTH_POLL_SECONDS = 0.25


def minio_client(s3: S3Settings) -> Minio:
    # Fail fast: the default client retries a refused connection for many seconds.
    timeout = urllib3.Timeout(connect=2.0, read=10.0)
    secure = s3.secure or s3.tls.enabled
    http = (
        s3_http_client(s3.tls, timeout, retries=False)
        if secure
        else urllib3.PoolManager(timeout=timeout, retries=False)
    )
    return Minio(
        s3.endpoint.split("://", 1)[-1],
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        region=s3.region,
        secure=secure,
        http_client=http,
    )


# ---- health checks: each raises while its server is not (yet) serving -------------------


async def check_s3(s3: S3Settings) -> None:
    client = minio_client(s3)
    await asyncio.to_thread(client.list_buckets)


async def check_kafka(kafka: KafkaSettings, host: str, port: int) -> None:
    # A bare TCP probe first: aiokafka logs every refused connection as an ERROR,
    # which would litter the console while Tansu is still starting.
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers,
        request_timeout_ms=5000,
        **kafka_options(kafka.tls),
    )
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


async def check_temporal(temporal: TemporalSettings) -> None:
    client = await Client.connect(
        temporal.address, namespace=temporal.namespace, tls=temporal_tls(temporal.tls)
    )
    await client.workflow_service.get_system_info(
        GetSystemInfoRequest(), timeout=timedelta(seconds=5)
    )


async def wait_healthy(
    proc: ManagedProcess,
    check: Callable[[], Awaitable[None]],
    limit: float = HEALTH_TIMEOUT_SECONDS,
) -> float:
    """Seconds until `check` passed; StackError if `proc` dies or `limit` runs out first."""
    started = time.monotonic()
    deadline = started + limit
    last_error: BaseException | None = None
    while True:
        if not proc.alive():
            raise StackError(
                f"{proc.name} exited with code {proc.returncode} while starting; "
                f"see {proc.log_path}:\n{proc.log_tail()}"
            )
        try:
            await asyncio.wait_for(check(), timeout=max(deadline - time.monotonic(), 0.1))
        except Exception as exc:  # noqa: BLE001 - any failure just means "not yet"
            last_error = exc
        else:
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise StackError(
                f"{proc.name} did not become healthy within {limit:.0f}s "
                f"(last error: {last_error!r}); see {proc.log_path}"
            )
        await asyncio.sleep(HEALTH_POLL_SECONDS)


# ---- provisioning: what must exist on the servers before the apps use them ---------------


async def ensure_buckets(s3: S3Settings, *more: str) -> None:
    client = minio_client(s3)

    def create() -> None:
        buckets = (
            s3.archive_bucket,
            s3.landing_bucket,
            s3.metadata_bucket,
            s3.broker_bucket,
            *more,
        )
        for bucket in dict.fromkeys(buckets):
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
                log.info("created bucket %s", bucket)

    await asyncio.to_thread(create)


async def ensure_topic(k: KafkaSettings) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=k.bootstrap_servers, request_timeout_ms=10_000, **kafka_options(k.tls)
    )
    await admin.start()
    try:
        if k.topic in await admin.list_topics():
            return
        try:
            await admin.create_topics(
                [NewTopic(name=k.topic, num_partitions=k.partitions, replication_factor=1)]
            )
            log.info("created topic %s with %d partitions", k.topic, k.partitions)
        except TopicAlreadyExistsError:
            pass
    finally:
        await admin.close()


# ---- our apps ----------------------------------------------------------------------------


async def wait_apps_ready(
    url: str,
    apps: Sequence[ManagedProcess],
    timeout: float,  # noqa: ASYNC109 - LocalStack.wait_ready's public interface
) -> None:
    """Polls `url` until it answers 200; StackError if a started app exits or `timeout` runs
    out first."""
    deadline = time.monotonic() + timeout
    last: str = "no response"
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            for proc in apps:
                if proc.started_at and not proc.alive():
                    raise StackError(
                        f"{proc.name} exited with code {proc.returncode}; "
                        f"see {proc.log_path}:\n{proc.log_tail()}"
                    )
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            if time.monotonic() >= deadline:
                raise StackError(f"{url} not ready within {timeout:.0f}s (last: {last})")
            await asyncio.sleep(HEALTH_POLL_SECONDS)
