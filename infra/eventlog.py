"""The Kafka event log: one topic, keyed by StudyInstanceUID, JSON events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

from infra.settings import KafkaSettings
from infra.tls.remote import kafka_options
from schemas.events import Event, event_key

log = logging.getLogger(__name__)


def _headers(event: Event) -> list[tuple[str, bytes]]:
    # Type and version in headers let consumers skip events without decoding the body.
    return [("type", event.type.encode()), ("version", str(event.version).encode())]


class EventPublisher:
    """Appends events to the log and returns only once the broker acknowledged them (acks=all)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        # Tansu has no idempotent producer; duplicates are handled by deterministic event ids.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            enable_idempotence=False,
            linger_ms=settings.linger_ms,
            request_timeout_ms=settings.request_timeout_ms,
            max_request_size=4 * 1024 * 1024,
            **kafka_options(settings.tls),
        )
        # The highest offset acknowledged per partition: everything this publisher announced
        # is on the log up to here (a read model that has applied it has seen it all).
        self.acknowledged: dict[int, int] = {}

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, event: Event) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: Sequence[Event]) -> None:
        """Send all, then wait for every acknowledgement: one round trip for the batch."""
        futures = [
            await self._producer.send(
                self._settings.topic,
                value=event.model_dump_json().encode(),
                key=event_key(event).encode(),
                headers=_headers(event),
            )
            for event in events
        ]
        for metadata in await asyncio.gather(*futures):
            if metadata.offset > self.acknowledged.get(metadata.partition, -1):
                self.acknowledged[metadata.partition] = metadata.offset


def newest_timestamp(batches: Iterable[list[ConsumerRecord[bytes, bytes]]]) -> float | None:
    """The broker timestamp (seconds) of the newest record a fetch brought; None if none."""
    newest = max((record.timestamp for records in batches for record in records), default=None)
    return None if newest is None else newest / 1000


class PollPacer:
    """Spaces consumer fetches at least `interval` apart, without delaying an idle consumer's
    first fetch after a quiet spell.

    With `busy_interval`, a fetch that brought `busy_records` or more spaces the next one that
    far instead: on a busy log each fetch then carries more records, and what a batch costs
    regardless of its size (the projector's read-model inserts, the broker's object-store
    reads) is paid less often per record."""

    def __init__(
        self, interval: float, busy_interval: float | None = None, busy_records: int = 0
    ) -> None:
        self.interval = interval
        self.busy_interval = busy_interval if busy_interval is not None else interval
        self.busy_records = busy_records
        self._current = interval
        self._last = 0.0

    def fetched(self, records: int) -> None:
        busy = self.busy_records > 0 and records >= self.busy_records
        self._current = self.busy_interval if busy else self.interval

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._last + self._current - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._last = loop.time()


def make_consumer(settings: KafkaSettings, group_id: str) -> AIOKafkaConsumer:
    """A consumer that resumes from committed offsets and starts new groups at offset zero."""
    # "latest" is unreliable on Tansu; every group starts from the beginning of the log.
    return AIOKafkaConsumer(
        settings.topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        **kafka_options(settings.tls),
    )


async def ensure_topic(settings: KafkaSettings) -> None:
    """Create the event topic if it does not exist yet."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **kafka_options(settings.tls)
    )
    await admin.start()
    try:
        if settings.topic in await admin.list_topics():
            return
        await admin.create_topics(
            [NewTopic(settings.topic, num_partitions=settings.partitions, replication_factor=1)]
        )
        log.info("created topic %s with %d partitions", settings.topic, settings.partitions)
    finally:
        await admin.close()


async def broker_answers(settings: KafkaSettings) -> bool:
    """True when the broker answers a metadata request."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=3000,
        **kafka_options(settings.tls),
    )
    try:
        await asyncio.wait_for(admin.start(), 5)
        await asyncio.wait_for(admin.list_topics(), 5)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    finally:
        await admin.close()
