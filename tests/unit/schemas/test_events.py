from __future__ import annotations

from schemas.events import (
    InstanceReceived,
    InstanceRef,
    StudyStabilized,
    event_key,
    fact_event_id,
    parse_event,
)


def _ref() -> InstanceRef:
    return InstanceRef(
        study_instance_uid="1.2",
        series_instance_uid="1.2.3",
        sop_instance_uid="1.2.3.4",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sha256="ab" * 32,
        size=10,
    )


def test_wire_form_round_trips_by_type_and_version() -> None:
    event = InstanceReceived(
        instance=_ref(),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        landing_mode="spool",
        landing_key="k",
        via="dimse",
        calling_ae="CT1",
    )
    decoded = parse_event(event.model_dump_json())
    assert decoded == event
    assert event_key(decoded) == "1.2"


def test_the_same_fact_gets_the_same_event_id() -> None:
    assert fact_event_id("received", "1.2.3", "aa") == fact_event_id("received", "1.2.3", "aa")
    assert fact_event_id("received", "1.2.3", "aa") != fact_event_id("received", "1.2.3", "bb")


def test_study_events_are_keyed_by_study() -> None:
    event = StudyStabilized(
        study_instance_uid="9.9", series_count=1, instance_count=2, quiet_seconds=3
    )
    assert event_key(parse_event(event.model_dump_json())) == "9.9"
