"""Which studies a caller's roles and scoped bindings reach."""

from __future__ import annotations

from infra.auth.scope import StudyRule, study_scope
from schemas.security import RoleBinding, StudyScope


def binding(role: str, institutions: list[str] = [], labels: list[str] = []) -> RoleBinding:  # noqa: B006
    return RoleBinding(role=role, scope=StudyScope(institutions=institutions, labels=labels))


def test_a_role_over_every_study_is_not_scoped() -> None:
    assert study_scope(["radiologist"]) is None
    assert study_scope(["admin"], [binding("radiologist", ["A"])]) is None


def test_a_bound_role_reaches_its_institutions_and_labels_only() -> None:
    scope = study_scope([], [binding("radiologist", [" St. Mary "], ["trial-7"])])
    assert scope == (StudyRule(frozenset({"st. mary"}), frozenset({"trial-7"})),)
    (rule,) = scope
    assert rule.admits("ST. MARY", [], False)
    assert rule.admits("Other", ["trial-7"], False)
    assert not rule.admits("Other", ["trial-8"], False)


def test_roles_that_do_not_read_studies_reach_none() -> None:
    assert study_scope(["technologist", "auditor"]) == ()
    assert study_scope([], [binding("technologist", ["A"])]) == ()


def test_a_researcher_reads_de_identified_studies_only() -> None:
    (rule,) = study_scope(["researcher"]) or ()
    assert rule.admits("A", [], True)
    assert not rule.admits("A", [], False)
    (bound,) = study_scope([], [binding("researcher", labels=["trial-7"])]) or ()
    assert bound.admits("", ["trial-7"], True)
    assert not bound.admits("", ["trial-7"], False)


def test_a_binding_to_no_study_reaches_none() -> None:
    assert study_scope([], [binding("radiologist")]) == ()
