"""The audit recorder batches entries into events and keeps them through a log outage."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from infra.audit_recorder import MAX_BATCH, AuditRecorder, dimse_entry, subject_of
from infra.eventlog import EventPublisher
from schemas.events import AccessAudited


class FlakyLog:
    def __init__(self) -> None:
        self.published: list[AccessAudited] = []
        self.down = False

    async def publish(self, event: Any) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.published.append(event)


async def test_entries_are_batched_and_survive_an_outage() -> None:
    log = FlakyLog()
    recorder = AuditRecorder(cast(EventPublisher, log), "gateway")
    log.down = True
    for n in range(5):
        recorder.record(dimse_entry("c-find", "success", "WS1", "10.0.0.1", f"match {n}"))
    await recorder.flush()
    assert log.published == []  # kept, not lost
    log.down = False
    recorder.record(dimse_entry("c-get", "success", "WS1", "10.0.0.1"))
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    await asyncio.sleep(0.4)
    stop.set()
    await task
    (event,) = log.published
    assert event.source == "gateway"
    assert [e.detail for e in event.entries] == [f"match {n}" for n in range(5)] + [""]


def test_subject_of_a_dicom_json_match() -> None:
    match = {
        "00100020": {"vr": "LO", "Value": ["P1"]},
        "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^J"}]},
        "0020000E": {"vr": "UI"},
    }
    assert subject_of(match) == {"patient_id": "P1", "study_instance_uid": "1.2.3"}


async def test_entries_wait_for_the_interval_unless_a_batch_is_full() -> None:
    log = FlakyLog()
    recorder = AuditRecorder(cast(EventPublisher, log), "api", flush_seconds=30)
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    recorder.record(dimse_entry("c-find", "success", "WS1", "10.0.0.1"))
    await asyncio.sleep(0.7)
    assert log.published == [], "one entry waits for the interval"
    for _ in range(MAX_BATCH):
        recorder.record(dimse_entry("c-find", "success", "WS1", "10.0.0.1"))
    await asyncio.sleep(0.7)
    assert sum(len(e.entries) for e in log.published) >= MAX_BATCH, "a full batch goes at once"
    stop.set()
    await task
    assert sum(len(e.entries) for e in log.published) == MAX_BATCH + 1, "stopping flushes the rest"
