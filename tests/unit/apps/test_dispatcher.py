from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from apps.dispatcher import received_by_study
from schemas.events import InstanceReceived, InstanceRef, StudyStabilized


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
