"""What a sync run moves: a study only one side holds moves whole, as the direction allows;
in a study both hold, the series with more instances on one side move, series by series,
or (instance by instance) what one side lacks, and different digests are conflicts, which
the policy settles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.sync import (
    ConflictPolicy,
    Direction,
    InstanceConflict,
    InstanceDigest,
    StudyCount,
    diff_instances,
    diff_series,
    plan_sync,
    winner,
)


def counts(**studies: int) -> list[StudyCount]:
    return [StudyCount(study_instance_uid=uid, instances=n) for uid, n in studies.items()]


def uids(studies: list[StudyCount]) -> list[str]:
    return [s.study_instance_uid for s in studies]


def test_studies_only_one_side_holds_move_whole_and_the_rest_are_compared() -> None:
    plan = plan_sync(counts(a=3, h=2, same=4), counts(b=2, h=3, same=4), "both")
    assert (uids(plan.pull), uids(plan.push), plan.both) == (["b"], ["a"], ["h", "same"])


def test_one_way_moves_one_way_only() -> None:
    here, there = counts(a=3, h=2), counts(b=2, h=3)
    pull = plan_sync(here, there, "pull")
    assert (uids(pull.pull), uids(pull.push), pull.both) == (["b"], [], ["h"])
    push = plan_sync(here, there, "push")
    assert (uids(push.pull), uids(push.push), push.both) == ([], ["a"], ["h"])


def test_equal_study_counts_with_different_series_move_both_ways() -> None:
    # 3 + 2 instances on each side: the study counts agree, the series do not.
    here, there = {"s1": 3, "s2": 2}, {"s1": 2, "s2": 2, "s3": 1}
    assert diff_series(here, there, "both") == (["s3"], ["s1"])
    assert diff_series(here, there, "pull") == (["s3"], [])
    assert diff_series(here, there, "push") == ([], ["s1"])
    assert diff_series(here, dict(here), "both") == ([], [])


def digest(series: str, sop: str, sha: str, minute: int = 0) -> InstanceDigest:
    at = datetime(2026, 12, 1, 10, minute, tzinfo=UTC)
    return InstanceDigest(
        series_instance_uid=series, sop_instance_uid=sop, dataset_sha256=sha, received_at=at
    )


def test_instance_comparison_finds_what_is_missing_and_what_conflicts() -> None:
    here = [digest("s1", "1", "aa"), digest("s1", "2", "bb"), digest("s2", "3", "cc", 5)]
    there = [digest("s1", "1", "aa"), digest("s2", "3", "dd", 9), digest("s3", "4", "ee")]
    diff = diff_instances("st", here, there, "both")
    assert (diff.pull_series, diff.push_series) == (["s3"], ["s1"])
    [conflict] = diff.conflicts
    assert (conflict.sop_instance_uid, conflict.here_sha256, conflict.there_sha256) == (
        "3", "cc", "dd",
    )  # fmt: skip
    assert not diff.same
    assert diff_instances("st", here, list(here), "both").same
    # An instance one side could not read (empty digest) is no conflict.
    unread = [digest("s1", "1", "")]
    assert diff_instances("st", unread, [digest("s1", "1", "aa")], "both").same


def conflict(here_minute: int | None, there_minute: int | None) -> InstanceConflict:
    def at(minute: int | None) -> datetime | None:
        return None if minute is None else datetime(2026, 12, 1, 10, minute, tzinfo=UTC)

    return InstanceConflict(
        study_instance_uid="st", series_instance_uid="s", sop_instance_uid="1",
        here_sha256="aa", there_sha256="bb",
        here_received_at=at(here_minute), there_received_at=at(there_minute),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "direction", "here", "there", "expected"),
    [
        ("keep-both", "both", 1, 2, None),
        ("prefer-here", "both", 1, 2, "here"),
        ("prefer-there", "both", 2, 1, "there"),
        ("prefer-newer", "both", 1, 2, "there"),
        ("prefer-newer", "both", 3, 2, "here"),
        ("prefer-newer", "both", 2, 2, None),  # a tie: nothing to prefer
        ("prefer-newer", "both", None, 2, None),
        ("prefer-here", "pull", 1, 2, None),  # pushing is not allowed
        ("prefer-there", "push", 1, 2, None),
    ],
)
def test_the_policy_names_whose_version_wins(
    policy: ConflictPolicy,
    direction: Direction,
    here: int | None,
    there: int | None,
    expected: str | None,
) -> None:
    assert winner(conflict(here, there), policy, direction) == expected
