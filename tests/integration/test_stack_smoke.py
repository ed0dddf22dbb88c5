"""The local servers start from their wheels, talk, and keep data across SIGKILL."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from infra.settings import (
    DicomSettings,
    HttpSettings,
    KafkaSettings,
    S3Settings,
    Settings,
    TemporalSettings,
)
from infra.stack import SEARCH_ATTRIBUTES, LocalStack, settings_to_env
from tests.integration.conftest import PORT_SHIFT

# Not the defaults, so a developer's running stack and this test do not collide.
S3_PORT = 18333 + PORT_SHIFT
KAFKA_PORT = 19092 + PORT_SHIFT
TEMPORAL_PORT = 17233 + PORT_SHIFT
TEMPORAL_UI_PORT = 18233 + PORT_SHIFT


def _settings(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        dicom=DicomSettings(port=11212 + PORT_SHIFT),
        http=HttpSettings(port=18080 + PORT_SHIFT),
        s3=S3Settings(
            endpoint=f"127.0.0.1:{S3_PORT}", access_key="smoke", secret_key="smoke-secret"
        ),
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{KAFKA_PORT}", topic="smoke.events"),
        temporal=TemporalSettings(
            address=f"127.0.0.1:{TEMPORAL_PORT}", ui_port=TEMPORAL_UI_PORT, namespace="smoke"
        ),
    )


def test_settings_to_env_round_trips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = _settings(tmp_path).model_copy(update={"external": True})
    for key in [k for k in os.environ if k.startswith("PACS_")]:
        monkeypatch.delenv(key)
    for key, value in settings_to_env(original).items():
        monkeypatch.setenv(key, value)
    assert Settings(_env_file=None) == original


@pytest.fixture
def stack_settings(tmp_path: Path) -> Iterator[Settings]:
    yield _settings(tmp_path / "data")


async def _produce(settings: Settings, value: bytes) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        acks="all",
        # Tansu has no idempotent producer.
        enable_idempotence=False,
    )
    await producer.start()
    try:
        await producer.send_and_wait(settings.kafka.topic, value, key=b"smoke")
    finally:
        await producer.stop()


async def _consume_until(settings: Settings, group: str, wanted: bytes) -> bool:
    # Tansu's "latest" ListOffsets is unreliable: read from earliest with a fresh group.
    consumer = AIOKafkaConsumer(
        settings.kafka.topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        for _ in range(10):
            batches = await consumer.getmany(timeout_ms=1000)
            if any(m.value == wanted for msgs in batches.values() for m in msgs):
                await consumer.commit()
                return True
        return False
    finally:
        await consumer.stop()


@pytest.mark.integration
async def test_servers_start_work_and_survive_sigkill(stack_settings: Settings) -> None:
    settings = stack_settings
    stack = LocalStack(settings)
    try:
        await stack.start_servers()
        s3 = stack.minio_client()
        bucket = settings.s3.archive_bucket
        payload = uuid.uuid4().bytes
        s3.put_object(bucket, "smoke/object", io.BytesIO(payload), len(payload))
        assert s3.get_object(bucket, "smoke/object").read() == payload

        message = b"smoke-" + uuid.uuid4().hex.encode()
        await _produce(settings, message)
        assert await _consume_until(settings, "smoke-before", message)

        client = await Client.connect(
            settings.temporal.address, namespace=settings.temporal.namespace
        )
        attrs = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=settings.temporal.namespace)
        )
        assert set(SEARCH_ATTRIBUTES) <= set(attrs.custom_attributes)

        # A crash, not a shutdown: nothing gets to flush.
        stack.kill_all()
        assert not any(p.alive() for p in stack.server_processes())

        restarted = LocalStack(settings)
        stack = restarted
        await stack.start_servers()
        s3 = stack.minio_client()
        assert s3.get_object(bucket, "smoke/object").read() == payload
        assert await _consume_until(settings, "smoke-after", message)
        client = await Client.connect(
            settings.temporal.address, namespace=settings.temporal.namespace
        )
        attrs = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=settings.temporal.namespace)
        )
        assert set(SEARCH_ATTRIBUTES) <= set(attrs.custom_attributes)
    finally:
        stack.stop_all()
