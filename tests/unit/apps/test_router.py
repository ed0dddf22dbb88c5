"""The dispatcher's router: which received instances go where, from the event alone."""

from __future__ import annotations

from datetime import UTC, datetime

from apps.router import attributes, route_items, study_routes
from schemas.events import InstanceReceived, InstanceRef
from schemas.routing import RoutingRule


def received(
    sop: str, modality: str = "CT", calling: str = "CT1", body: str = ""
) -> InstanceReceived:
    metadata = {"00180015": {"vr": "CS", "Value": [body]}} if body else {}
    return InstanceReceived(
        instance=InstanceRef(
            study_instance_uid="1.2", series_instance_uid="1.2.3", sop_instance_uid=sop,
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sha256="ab" * 32, size=10,
        ),
        transfer_syntax_uid="1.2.840.10008.1.2.1", modality=modality, landing_mode="spool",
        landing_key=f"k/{sop}", via="dimse", calling_ae=calling, metadata=metadata,
    )  # fmt: skip


def rule(name: str, **fields: object) -> RoutingRule:
    return RoutingRule.model_validate({"name": name, "version": 1, **fields})


def test_attributes_come_from_the_event_and_its_header() -> None:
    found = attributes(received("1", body="HEAD"))
    assert found["Modality"] == "CT" and found["CallingAE"] == "CT1"
    assert found["BodyPartExamined"] == "HEAD" and found["StudyDescription"] == ""
    assert found["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.2"


def test_items_per_destination_and_way_in_log_order() -> None:
    rules = [
        rule("ct", match={"Modality": "CT"}, destinations=["a", "b"]),
        rule("head", match={"BodyPartExamined": "HEAD"}, destinations=["b"], via="stow"),
        rule("off", destinations=["c"], enabled=False),
        rule("study", match={"Modality": "MR"}, destinations=["c"], on="study"),  # held
    ]
    events = [received("1"), received("2", modality="MR", body="HEAD"), received("3")]
    routed = route_items(rules, events)
    assert {k: [i.instance.sop_instance_uid for i in v] for k, v in routed.items()} == {
        ("a", "dimse", False): ["1", "3"],
        ("b", "dimse", False): ["1", "3"],
        ("b", "stow", False): ["2"],
        ("c", "dimse", True): ["2"],  # held by c's workflow until its study is stable
    }
    assert study_routes(rules) == {("c", "dimse")}
    item = routed[("a", "dimse", False)][0]
    assert (item.rule, item.rule_version, item.landing_key) == ("ct", 1, "k/1")
    assert item.max_age_seconds == 7 * 24 * 3600


def test_no_rules_route_nothing() -> None:
    assert route_items([], [received("1")]) == {}


def test_a_window_gets_the_platforms_zone_and_its_opening_as_due_time() -> None:
    rules = [
        rule("night", destinations=["a"], window={"start": "20:00", "end": "06:00"}),
        rule("tokyo", destinations=["b"], deidentify=True,
             window={"start": "20:00", "end": "06:00", "timezone": "Asia/Tokyo"}),
    ]  # fmt: skip
    event = received("1").model_copy(update={"occurred_at": datetime(2026, 12, 2, 12, tzinfo=UTC)})
    routed = route_items(rules, [event], timezone="Europe/Paris")
    night = routed[("a", "dimse", False)][0]
    assert night.window is not None and night.window.timezone == "Europe/Paris"
    assert night.due_at == datetime(2026, 12, 2, 19, tzinfo=UTC)  # 20:00 in Paris (UTC+1)
    assert night.deidentify is None
    tokyo = routed[("b", "dimse", False)][0]
    assert tokyo.window is not None and tokyo.window.timezone == "Asia/Tokyo"
    assert tokyo.due_at == event.occurred_at  # 21:00 in Tokyo: open already
    assert tokyo.deidentify is not None and tokyo.deidentify.retain_longitudinal_modified_dates
