from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from aiokafka.structs import ConsumerRecord

from apps.dispatcher import Announced, find_orphans, received_by_study, sweep_age, sweep_landing
from infra.storage.landing import SpoolLanding, landing_key
from schemas.events import InstanceReceived, InstanceRef, StudyStabilized
from tests.dicom_factory import ct_dataset, part10_bytes


def record(offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("pacs.events", 0, offset, 0, 0, b"k", value, None, 1, len(value), ())


def received(study: str, sop: str) -> bytes:
    ref = InstanceRef(
        study_instance_uid=study,
        series_instance_uid=f"{study}.1",
        sop_instance_uid=sop,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sha256="aa",
        size=1,
    )
    event = InstanceReceived(
        instance=ref,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        landing_mode="spool",
        landing_key="k",
        via="dimse",
    )
    return event.model_dump_json().encode()


def test_groups_received_instances_by_study_and_skips_what_it_cannot_read() -> None:
    stable = StudyStabilized(
        study_instance_uid="1.2", series_count=1, instance_count=1, quiet_seconds=1
    )
    records = [
        record(0, received("1.2", "1.2.1.1")),
        record(1, b"{not json"),
        record(2, stable.model_dump_json().encode()),
        record(3, received("1.3", "1.3.1.1")),
        record(4, received("1.2", "1.2.1.2")),
    ]
    grouped = received_by_study(records)
    assert {
        study: [e.instance.sop_instance_uid for e in events] for study, events in grouped.items()
    } == {
        "1.2": ["1.2.1.1", "1.2.1.2"],
        "1.3": ["1.3.1.1"],
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[InstanceReceived] = []

    async def publish_many(self, events: list[InstanceReceived]) -> None:
        self.events.extend(events)


def land(landing: SpoolLanding, study: str, sop: str, age: float) -> str:
    ds = ct_dataset(study, f"{study}.1", 1, size=4)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
    data = part10_bytes(ds)
    key = landing_key(study, f"{study}.1", sop, hashlib.sha256(data).hexdigest())
    landing.put(key, data)
    past = time.time() - age
    os.utime(landing.root / key, (past, past))
    return key


async def test_the_sweep_re_announces_only_what_was_never_announced_and_only_once(
    tmp_path: Path,
) -> None:
    """A study still arriving keeps old landed objects that are waiting, not lost: the log
    already has them. Only the object whose announcement never made it is an orphan."""
    landing = SpoolLanding(tmp_path)
    waiting = land(landing, "1.2.3", "1.2.3.1", age=600)
    lost = land(landing, "1.2.3", "1.2.3.2", age=600)
    land(landing, "1.2.3", "1.2.3.3", age=1)  # too young to tell
    announced = Announced()
    (seen,) = [
        e
        for e in find_orphans(landing, 120)
        if e.landing_key == waiting  # as the gateway announced it
    ]
    announced.saw(seen)
    publisher = Recorder()
    assert await sweep_landing([landing], 120, publisher, announced) == 1  # type: ignore[arg-type]
    assert [e.landing_key for e in publisher.events] == [lost]
    # The next sweep finds nothing new to say; an archived (dropped) object is forgotten.
    assert await sweep_landing([landing], 120, publisher, announced) == 0  # type: ignore[arg-type]
    landing.delete(waiting)
    find_orphans(landing, 120, announced)
    assert ("spool", waiting) not in announced and ("spool", lost) in announced


def test_a_lagging_dispatcher_judges_only_objects_older_than_what_it_has_read() -> None:
    now = 10_000.0
    # Caught up (read the log until a moment ago): the configured age applies.
    assert sweep_age(120, consumed_through=now - 1, now=now, margin=10) == 120
    # Five minutes behind a busy log: announcements of the last 5 min + margin are unread.
    assert sweep_age(120, consumed_through=now - 300, now=now, margin=10) == 310
