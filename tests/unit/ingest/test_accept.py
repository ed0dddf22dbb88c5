"""The accept path's decisions, with a real spool and stand-ins for the archive and broker.

The same behaviour is exercised end to end against the real servers in tests/integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from infra.dicom.statuses import DUPLICATE_SOP_INSTANCE, OUT_OF_RESOURCES, SUCCESS
from infra.settings import DuplicatePolicy, IngestSettings
from infra.storage.archive import StoredObject
from infra.storage.landing import SpoolLanding
from ingest.accept import Acceptor, Origin
from schemas.events import Event, InstanceReceived, InstanceRejected
from tests.dicom_factory import ct_dataset, part10_bytes

ORIGIN = Origin(via="dimse", calling_ae="CT1", client="127.0.0.1")


class FakeArchive:
    bucket = "archive"

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}

    def head(self, key: str) -> StoredObject | None:
        return self.objects.get(key)

    def sops_in_study(self, study: str) -> set[str]:
        keys = [k for k in self.objects if k.startswith(f"{study}/")]
        return {k.rsplit("/", 1)[-1].removesuffix(".dcm") for k in keys}


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.fail = False

    async def publish(self, event: Event) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.events.append(event)

    async def publish_many(self, events: Sequence[Event]) -> None:
        for event in events:
            await self.publish(event)


def make(tmp_path: Path, policy: DuplicatePolicy = DuplicatePolicy.REJECT) -> Any:
    archive, publisher = FakeArchive(), FakePublisher()
    acceptor = Acceptor(
        SpoolLanding(tmp_path),
        archive,  # type: ignore[arg-type]
        publisher,  # type: ignore[arg-type]
        IngestSettings(duplicate_policy=policy, accept_timeout_seconds=2),
        asyncio.get_running_loop(),
    )
    return acceptor, archive, publisher


async def test_new_instance_is_landed_then_announced(tmp_path: Path) -> None:
    acceptor, _, publisher = make(tmp_path)
    data = part10_bytes(ct_dataset("1.2.3", "1.2.3.4", 1, size=8))
    outcome = await acceptor.accept(data, ORIGIN)
    assert outcome.status == SUCCESS
    (event,) = publisher.events
    assert isinstance(event, InstanceReceived)
    assert acceptor.landing.get(event.landing_key) == data
    assert event.calling_ae == "CT1"


async def test_resend_while_landed_repeats_the_same_event_id(tmp_path: Path) -> None:
    acceptor, _, publisher = make(tmp_path)
    data = part10_bytes(ct_dataset("1.2.3", "1.2.3.4", 1, size=8))
    await acceptor.accept(data, ORIGIN)
    assert (await acceptor.accept(data, ORIGIN)).status == SUCCESS
    first, second = publisher.events
    assert first.event_id == second.event_id


async def test_resend_of_archived_identical_instance_publishes_nothing(tmp_path: Path) -> None:
    acceptor, archive, publisher = make(tmp_path)
    ds = ct_dataset("1.2.3", "1.2.3.4", 1, size=8)
    data = part10_bytes(ds)
    await acceptor.accept(data, ORIGIN)
    (event,) = publisher.events
    acceptor.landing.delete(event.landing_key)  # what the archive workflow does
    key = f"1.2.3/1.2.3.4/{ds.SOPInstanceUID}.dcm"
    archive.objects[key] = StoredObject(key, event.instance.sha256, len(data))
    assert (await acceptor.accept(data, ORIGIN)).status == SUCCESS
    assert len(publisher.events) == 1


class Deleted:
    """A pending deletion of study 1.2.3."""

    def covering(self, study: str, series: str, sop: str) -> str:
        return "d1" if study == "1.2.3" else ""


async def test_a_deleted_instance_sent_again_is_a_new_arrival(tmp_path: Path) -> None:
    """Still archived (its purge pending), yet deleted: landed and announced again, under
    an event id of its own, and a different version is not refused as a duplicate."""
    acceptor, archive, publisher = make(tmp_path)
    ds = ct_dataset("1.2.3", "1.2.3.4", 1, size=8)
    data = part10_bytes(ds)
    await acceptor.accept(data, ORIGIN)
    (event,) = publisher.events
    acceptor.landing.delete(event.landing_key)
    key = f"1.2.3/1.2.3.4/{ds.SOPInstanceUID}.dcm"
    archive.objects[key] = StoredObject(key, event.instance.sha256, len(data))
    acceptor.deletions = Deleted()
    assert (await acceptor.accept(data, ORIGIN)).status == SUCCESS
    again = publisher.events[-1]
    assert isinstance(again, InstanceReceived) and again.event_id != event.event_id
    assert again.replaces_sha256 is None and acceptor.landing.get(again.landing_key) == data
    ds.PatientName = "Other^Name"
    assert (await acceptor.accept(part10_bytes(ds), ORIGIN)).status == SUCCESS


async def test_different_bytes_are_rejected_and_recorded(tmp_path: Path) -> None:
    acceptor, _, publisher = make(tmp_path)
    ds = ct_dataset("1.2.3", "1.2.3.4", 1, size=8)
    await acceptor.accept(part10_bytes(ds), ORIGIN)
    ds.PatientName = "Other^Name"
    outcome = await acceptor.accept(part10_bytes(ds), ORIGIN)
    assert outcome.status == DUPLICATE_SOP_INSTANCE
    assert isinstance(publisher.events[-1], InstanceRejected)
    assert len(acceptor.landing.versions("1.2.3", "1.2.3.4", ds.SOPInstanceUID)) == 1


async def test_overwrite_policy_lands_the_new_version_beside_the_old(tmp_path: Path) -> None:
    acceptor, _, publisher = make(tmp_path, DuplicatePolicy.OVERWRITE)
    ds = ct_dataset("1.2.3", "1.2.3.4", 1, size=8)
    await acceptor.accept(part10_bytes(ds), ORIGIN)
    ds.PatientName = "Corrected^Name"
    assert (await acceptor.accept(part10_bytes(ds), ORIGIN)).status == SUCCESS
    first, second = publisher.events
    assert isinstance(second, InstanceReceived)
    assert isinstance(first, InstanceReceived)
    assert second.replaces_sha256 == first.instance.sha256


@pytest.mark.parametrize("blocking", [False, True])
async def test_broker_failure_is_out_of_resources_never_success(
    tmp_path: Path, blocking: bool
) -> None:
    acceptor, _, publisher = make(tmp_path)
    publisher.fail = True
    data = part10_bytes(ct_dataset("1.2.3", "1.2.3.4", 1, size=8))
    if blocking:
        outcome = await asyncio.to_thread(acceptor.accept_blocking, data, ORIGIN)
    else:
        outcome = await acceptor.accept(data, ORIGIN)
    assert outcome.status == OUT_OF_RESOURCES
    assert "broker down" in outcome.reason


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("blocking", [False, True])
async def test_each_stage_is_timed_and_a_failure_counts_as_one(
    tmp_path: Path, blocking: bool
) -> None:
    acceptor, _, publisher = make(tmp_path)
    via = ORIGIN.via

    async def accept(data: bytes) -> int:
        if blocking:
            return (await asyncio.to_thread(acceptor.accept_blocking, data, ORIGIN)).status
        return (await acceptor.accept(data, ORIGIN)).status

    landing = ("pacs_ingest_landing_seconds_count", {"via": via, "landing": "spool"})
    published = ("pacs_ingest_publish_seconds_count", {"via": via})
    succeeded = ("pacs_ingest_accept_seconds_count", {"via": via, "status": "success"})
    failed = ("pacs_ingest_accept_seconds_count", {"via": via, "status": "failure"})
    before = [_count(name, **labels) for name, labels in (landing, published, succeeded, failed)]
    assert await accept(part10_bytes(ct_dataset("1.2.3", "1.2.3.4", 1, size=8))) == SUCCESS
    publisher.fail = True
    assert await accept(part10_bytes(ct_dataset("1.2.3", "1.2.3.4", 2, size=8))) != SUCCESS
    after = [_count(name, **labels) for name, labels in (landing, published, succeeded, failed)]
    # Both landed; only the first was acknowledged; each answer is counted by its class.
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1, 1]
