"""Event dispatcher: turns `pacs.instance.received` events into StudyIngestWorkflow signals.

Offsets are committed only after every signal-with-start of a poll succeeded, so a crash
re-delivers (the workflow ignores instances it already has). One signal carries every
instance of a study in the poll: the Temporal dev server takes ~210 signals/s, not 4,000.
It also re-announces landed objects that have waited too long (their announcement was lost
in a crash between landing and the broker ack), so nothing stays in landing forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from functools import partial

from aiokafka.structs import ConsumerRecord
from temporalio.client import Client
from temporalio.common import TypedSearchAttributes

from apps.landings import landings
from apps.prefetcher import Prefetcher
from apps.rejections import Rejections
from apps.router import Router
from infra.auth.tokens import service_token
from infra.dicom.header import HeaderError, read_header
from infra.eventlog import EventPublisher, PollPacer, make_consumer, newest_timestamp
from infra.internal_api import InternalApi, api_base_url
from infra.metrics import LandingBacklog, serve_metrics
from infra.settings import Settings
from infra.storage.landing import Landing, sha_of_key
from infra.temporal_client import connect_temporal
from ingest.accept import Origin, instance_ref, received_event
from ingest.wiring import start_with_retry
from schemas.events import InstanceReceived, StudyStabilized, WorklistItemScheduled, parse_event
from schemas.workflows import InstancesReceived, LandedInstance, StudyContext, StudyIngestInput
from workflows.study_ingest import StudyIngestWorkflow, search_attributes

log = logging.getLogger(__name__)

GROUP_ID = "pacs-dispatcher"
SWEEP_EVERY_SECONDS = 30.0
# The original sender is not known any more; the audit keeps the first announcement's.
SWEEP_ORIGIN = Origin(via="dimse", client="landing-sweep")


def workflow_id(study_instance_uid: str) -> str:
    return f"study-ingest:{study_instance_uid}"


def landed(event: InstanceReceived) -> LandedInstance:
    return LandedInstance(
        instance=event.instance,
        landing_mode=event.landing_mode,
        landing_key=event.landing_key,
        transfer_syntax_uid=event.transfer_syntax_uid,
        replaces_sha256=event.replaces_sha256,
        received_at=event.occurred_at,
    )


def context_of(event: InstanceReceived) -> StudyContext:
    return StudyContext(
        study_instance_uid=event.instance.study_instance_uid,
        patient_id=event.patient_id,
        modality=event.modality,
        calling_ae=event.calling_ae,
    )


async def signal_study(client: Client, settings: Settings, events: list[InstanceReceived]) -> None:
    context = context_of(events[0])
    await client.start_workflow(
        StudyIngestWorkflow.run,
        StudyIngestInput(
            context=context,
            stable_after_seconds=settings.ingest.stable_after_seconds,
            batch_size=settings.ingest.archive_batch_size,
            archive_settle_seconds=settings.ingest.archive_settle_seconds,
            archive_backlog=settings.ingest.archive_max_backlog,
        ),
        id=workflow_id(context.study_instance_uid),
        task_queue=settings.temporal.ingest_task_queue,
        start_signal="instances_received",
        start_signal_args=[
            InstancesReceived(context=context, instances=[landed(e) for e in events])
        ],
        search_attributes=TypedSearchAttributes(search_attributes(context)),
    )


def orphan_event(landing: Landing, key: str) -> InstanceReceived | None:
    """Rebuild the announcement of a landed object from its own bytes."""
    data = landing.get(key)
    if data is None:
        return None
    try:
        header = read_header(data)
    except HeaderError:
        log.error("landed object %s is unreadable; left in place for an operator", key)
        return None
    sha = sha_of_key(key)
    ref = instance_ref(header, sha, len(data))
    return received_event(ref, header, key, landing.mode, SWEEP_ORIGIN, None)


class Announced:
    """Landing keys whose announcement this dispatcher has seen on the log (or made itself).

    A landed object waits for its study's archive workflow, which copies only once the study
    has settled: a study that keeps arriving for longer than `orphan_after_seconds` (one image
    every two seconds from each of a hundred modalities, say) has landed objects older than
    that which are not orphans at all. Re-announcing them every sweep flooded the log and the
    worker with duplicates (a 10-minute soak: 10,000-14,000 re-announced per sweep, archiving
    down to 2 objects/s). Only an object never seen announced is an orphan. After a restart
    the set is empty and each waiting object is re-announced once: harmless, same event id."""

    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = defaultdict(set)

    def saw(self, event: InstanceReceived) -> None:
        self._keys[event.landing_mode].add(event.landing_key)

    def __contains__(self, item: tuple[str, str]) -> bool:
        mode, key = item
        return key in self._keys[mode]

    def keep_only(self, mode: str, landed: set[str]) -> None:
        """Forget keys no longer landed (archived and dropped): the set stays the backlog's size."""
        self._keys[mode] &= landed


def find_orphans(
    landing: Landing, older_than: float, announced: Announced | None = None
) -> list[InstanceReceived]:
    events = []
    old = list(landing.older_than(older_than))
    if announced is not None:
        announced.keep_only(landing.mode, set(landing.older_than(0)))
    for key in old:
        if announced is not None and (landing.mode, key) in announced:
            continue
        if (event := orphan_event(landing, key)) is not None:
            events.append(event)
    return events


def sweep_age(orphan_after: float, consumed_through: float, now: float, margin: float) -> float:
    """How old a landed object must be for the sweep to judge it. Its announcement (if any)
    was acknowledged within `margin` (the accept timeout) of its landing; this dispatcher has
    read the log up to `consumed_through` (wall clock). A dispatcher lagging behind a busy log
    has not read the announcements of recent objects yet: those are not judged either."""
    return max(orphan_after, now - consumed_through + margin)


async def sweep_landing(
    areas: Iterable[Landing],
    older_than: float,
    publisher: EventPublisher,
    announced: Announced | None = None,
) -> int:
    """Re-announce every landed object older than `older_than` seconds that was never seen
    announced; returns how many."""
    total = 0
    for landing in areas:
        events = await asyncio.to_thread(find_orphans, landing, older_than, announced)
        if events:
            await publisher.publish_many(events)
            for event in events:
                if announced is not None:
                    announced.saw(event)
            log.warning("re-announced %d landed objects from %s landing", len(events), landing.mode)
            total += len(events)
    return total


def received_by_study(
    records: Iterable[ConsumerRecord[bytes, bytes]],
    stabilized: list[str] | None = None,
    scheduled: list[WorklistItemScheduled] | None = None,
) -> dict[str, list[InstanceReceived]]:
    """The received events per study; the studies stabilized go to `stabilized`, the
    procedures scheduled to `scheduled`, if given."""
    by_study: dict[str, list[InstanceReceived]] = defaultdict(list)
    for record in records:
        if record.value is None:
            continue
        try:
            event = parse_event(record.value)
        except ValueError:
            # A record we cannot read must not stop every study behind it.
            log.error("skipping undecodable record %d/%d", record.partition, record.offset)
            continue
        if isinstance(event, InstanceReceived):
            by_study[event.instance.study_instance_uid].append(event)
        elif stabilized is not None and isinstance(event, StudyStabilized):
            stabilized.append(event.study_instance_uid)
        elif scheduled is not None and isinstance(event, WorklistItemScheduled):
            scheduled.append(event)
    return by_study


def landed_count(landing: Landing) -> int:
    return sum(1 for _ in landing.older_than(0))


async def run_dispatcher(settings: Settings, stop: asyncio.Event) -> None:
    # Process metrics (and any this process defines) on the loopback; 0 = off.
    serve_metrics(settings.metrics.dispatcher_port, settings.metrics.host)
    areas = landings(settings)  # one S3 client for the backlog gauge and the sweep
    LandingBacklog({mode: partial(landed_count, area) for mode, area in areas.items()})
    client = await connect_temporal(settings.temporal)
    api = InternalApi(api_base_url(settings), service_token(settings, "dispatcher"))
    router = Router(client, api, settings)
    prefetcher = Prefetcher(client, api, settings)
    rejections = Rejections(client, settings)
    publisher = EventPublisher(settings.kafka)
    await start_with_retry(publisher)
    consumer = make_consumer(settings.kafka, GROUP_ID)
    await consumer.start()
    next_sweep = time.monotonic() + settings.ingest.orphan_after_seconds
    landing_areas = list(areas.values())
    announced = Announced()
    consumed_through = 0.0
    pacer = PollPacer(settings.kafka.consumer_poll_interval_seconds)
    try:
        while not stop.is_set():
            await pacer.wait()
            asked_at = time.time()
            polled = await consumer.getmany(timeout_ms=500, max_records=5000)
            newest = newest_timestamp(polled.values())
            # Read up to here: the newest record's time, or, when nothing was new, the ask.
            consumed_through = asked_at if newest is None else max(consumed_through, newest)
            stable: list[str] = []
            scheduled: list[WorklistItemScheduled] = []
            records = (r for batch in polled.values() for r in batch)
            by_study = received_by_study(records, stable, scheduled)
            for events in by_study.values():
                for event in events:
                    announced.saw(event)
            if by_study:
                await asyncio.gather(
                    *(signal_study(client, settings, events) for events in by_study.values())
                )
                # In log order; handed over before the commit below, as the ingest signals.
                received = sorted(
                    (e for events in by_study.values() for e in events),
                    key=lambda e: e.occurred_at,
                )
                await router.route(received)
                await rejections.on_received(received)
            if stable:
                await router.release(stable)
            if scheduled:
                await prefetcher.on_scheduled(scheduled)
            if polled:
                await consumer.commit()
            if time.monotonic() >= next_sweep:
                # The sweep is the safety net, dispatching the main job: a failed sweep (a
                # broker outage, an unreadable file) is logged and tried again next time.
                try:
                    age = sweep_age(
                        settings.ingest.orphan_after_seconds,
                        consumed_through,
                        time.time(),
                        settings.ingest.accept_timeout_seconds,
                    )
                    await sweep_landing(landing_areas, age, publisher, announced)
                except Exception:
                    log.exception("landing sweep failed; next try in %d s", SWEEP_EVERY_SECONDS)
                next_sweep = time.monotonic() + SWEEP_EVERY_SECONDS
    finally:
        await consumer.stop()
        await publisher.stop()
        api.close()
