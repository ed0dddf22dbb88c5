"""Routing rule matching (DICOM wildcards and lists) and schedule windows."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from pydantic import ValidationError

from schemas.routing import RoutingRuleBody, ScheduleWindow, value_matches


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("CT", "CT", True),
        ("CT", "MR", False),
        ("CT", "CT ", True),  # DICOM pads to even length
        ("C?", "CR", True),
        ("C?", "CTA", False),
        ("*HEAD*", "CT HEAD W/O", True),
        ("CT\\MR", "MR", True),
        ("CT\\MR", "US", False),
        ("[CT]", "[CT]", True),  # a bracket is a character, not a class
        ("[CT]", "C", False),
        ("ct", "CT", False),  # case-sensitive, as C-FIND matching of CS values
        ("*", "", True),
    ],
)
def test_value_matches(pattern: str, value: str, expected: bool) -> None:
    assert value_matches(pattern, value) is expected


def test_a_rule_matches_when_every_key_does() -> None:
    rule = RoutingRuleBody(
        match={"Modality": "CT\\MR", "CallingAE": "SCANNER*"}, destinations=["archive-2"]
    )
    assert rule.matches({"Modality": "CT", "CallingAE": "SCANNER1", "BodyPartExamined": "X"})
    assert not rule.matches({"Modality": "CT", "CallingAE": "WS1"})
    assert not rule.matches({"CallingAE": "SCANNER1"})  # no Modality: empty does not match
    assert RoutingRuleBody(destinations=["a"]).matches({})  # no keys: everything


def test_windows_may_wrap_midnight() -> None:
    night = ScheduleWindow(start=time(20), end=time(6))
    assert night.contains(time(23, 30)) and night.contains(time(5, 59))
    assert not night.contains(time(6)) and not night.contains(time(12))
    day = ScheduleWindow(start=time(8), end=time(17))
    assert day.contains(time(8)) and not day.contains(time(17))
    with pytest.raises(ValidationError):
        ScheduleWindow(start=time(8), end=time(8))


@pytest.mark.parametrize(
    "body",
    [
        {"destinations": []},
        {"destinations": ["a", "a"]},
        {"destinations": ["not a name"]},
        {"destinations": ["a"], "match": {"PatientName": "X*"}},  # not a routing key
        {"destinations": ["a"], "match": {"Modality": " "}},
        {"destinations": ["a"], "via": "ftp"},
        {"destinations": ["a"], "on": "series"},
    ],
)
def test_bad_rules_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RoutingRuleBody.model_validate(body)


def test_a_window_opens_and_is_open_in_its_own_time_zone() -> None:
    paris = ScheduleWindow(start=time(20), end=time(6), timezone="Europe/Paris")
    noon = datetime(2026, 7, 1, 12, tzinfo=UTC)  # 14:00 in Paris (summer time)
    assert not paris.open_at(noon)
    assert paris.next_opening(noon) == datetime(2026, 7, 1, 18, tzinfo=UTC)
    late = datetime(2026, 7, 1, 23, tzinfo=UTC)  # 01:00 in Paris: open, past midnight
    assert paris.open_at(late) and paris.next_opening(late) == late
    winter = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert paris.next_opening(winter) == datetime(2026, 12, 1, 19, tzinfo=UTC)
    morning = datetime(2026, 12, 1, 6, tzinfo=UTC)  # 07:00 in Paris, closed since 06:00
    assert paris.next_opening(morning) == datetime(2026, 12, 1, 19, tzinfo=UTC)
    with pytest.raises(ValidationError, match="IANA"):
        ScheduleWindow(start=time(1), end=time(2), timezone="Mars/Olympus")
