"""Which priors a prefetch pulls: wanted modality and body part, within the lookback, newest
first, at most the maximum, and not those complete here already."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from schemas.prefetch import PriorChoice, RemoteStudy, choose_priors, prefetch_workflow_id

TODAY = date(2026, 12, 2)


def remote(uid: str, when: date | None, modalities: list[str], instances: int | None = 10,
           body_parts: list[str] | None = None, source: str = "a") -> RemoteStudy:  # fmt: skip
    return RemoteStudy(
        source=source, study_instance_uid=uid, study_date=when, modalities=modalities,
        instances=instances, body_parts=body_parts or [],
    )  # fmt: skip


def decided(found: list[RemoteStudy], local: dict[str, int], **choice: object) -> dict[str, str]:
    picked = choose_priors(
        found, local, PriorChoice.model_validate({"sources": ["a"], **choice}), TODAY
    )
    return {d.study.study_instance_uid: d.decision for d in picked}


def test_newest_wanted_first_up_to_the_maximum_skipping_what_is_complete_here() -> None:
    found = [
        remote("old", date(2023, 1, 1), ["CT"]),
        remote("new", date(2026, 6, 1), ["CT", "SR"]),
        remote("mid", date(2024, 1, 1), ["CT"]),
        remote("mr", date(2025, 1, 1), ["MR"]),
        remote("here", date(2025, 6, 1), ["CT"], instances=4),
    ]
    assert decided(found, {"here": 4, "mid": 3}, modalities=["CT"], max_studies=3) == {
        "new": "pull",
        "here": "complete here",  # counts toward the maximum: it is one of the priors wanted
        "mr": "not wanted",
        "mid": "pull",  # 3 of 10 here: pulled again (what is here already is a no-op)
        "old": "over the maximum",
    }


def test_lookback_wildcards_body_parts_and_the_study_it_is_for() -> None:
    found = [
        remote("ancient", date(2001, 1, 1), ["CT"]),
        remote("chest", date(2026, 1, 1), ["CT"], body_parts=["CHEST"]),
        remote("head", date(2026, 2, 1), ["CT"], body_parts=["HEAD"]),
        remote("undated", None, ["CR"], instances=None),
        remote("current", date(2026, 12, 2), ["CT"], body_parts=["CHEST"]),
    ]
    picked = choose_priors(
        found, {}, PriorChoice(sources=["a"], modalities=["C?"], body_parts=["CHEST"],
                               lookback_days=365 * 10), TODAY, exclude="current",
    )  # fmt: skip
    assert {d.study.study_instance_uid: d.decision for d in picked} == {
        "chest": "pull",
        "head": "not wanted",
        "ancient": "too old",
        "undated": "not wanted",  # no body part known, and body parts were asked for
    }


def test_a_study_on_two_sources_is_decided_once_from_the_first() -> None:
    found = [remote("s", date(2026, 1, 1), ["CT"], source="a"),
             remote("s", date(2026, 1, 1), ["CT"], source="b")]  # fmt: skip
    picked = choose_priors(found, {}, PriorChoice(sources=["a", "b"]), TODAY)
    assert [(d.study.source, d.decision) for d in picked] == [("a", "pull")]


def test_one_workflow_per_patient_and_accession_with_no_patient_id_in_clear() -> None:
    one = prefetch_workflow_id("PAT-1", "ACC-1")
    assert one == prefetch_workflow_id("PAT-1", "ACC-1") != prefetch_workflow_id("PAT-1", "ACC-2")
    assert "PAT-1" not in one and one.startswith("prefetch:")
    with pytest.raises(ValidationError, match="listed twice"):
        PriorChoice(sources=["a", "a"])
