"""What a sync run moves: more there is pulled, more here is pushed, as the direction allows."""

from __future__ import annotations

from schemas.sync import StudyCount, plan_sync


def counts(**studies: int) -> list[StudyCount]:
    return [StudyCount(study_instance_uid=uid, instances=n) for uid, n in studies.items()]


def uids(studies: list[StudyCount]) -> list[str]:
    return [s.study_instance_uid for s in studies]


def test_both_ways_pulls_what_is_fuller_there_and_pushes_what_is_fuller_here() -> None:
    plan = plan_sync(counts(a=3, h=2, same=4), counts(b=2, h=3, same=4), "both")
    assert (uids(plan.pull), uids(plan.push), plan.same) == (["b", "h"], ["a"], 1)


def test_one_way_moves_one_way_only() -> None:
    here, there = counts(a=3, h=2), counts(b=2, h=3)
    pull = plan_sync(here, there, "pull")
    assert (uids(pull.pull), uids(pull.push)) == (["b", "h"], [])
    push = plan_sync(here, there, "push")
    assert (uids(push.pull), uids(push.push)) == ([], ["a"])
