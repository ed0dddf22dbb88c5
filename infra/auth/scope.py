"""Which studies a caller may read: every one, or those its scoped role bindings reach.

A role that reads studies without a binding reaches every study — except `researcher`,
which reaches de-identified studies only (PatientIdentityRemoved YES), scoped or not. A
study is visible when any of the caller's rules admits it. Everything that reads studies
(QIDO, WADO of every kind, the change feed, C-FIND, C-GET, C-MOVE) asks the same rules, and
a study outside them is answered as if it did not exist (404, no match), so a scope never
confirms that a study is there.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from infra.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from schemas.security import RoleBinding, StudyRuleModel


@dataclass(frozen=True)
class StudyRule:
    """Studies of one of `institutions` (casefolded) or with one of `labels`; both empty:
    any study. `deidentified`: only studies whose PatientIdentityRemoved is YES."""

    institutions: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    deidentified: bool = False

    @property
    def any_study(self) -> bool:
        return not self.institutions and not self.labels

    def admits(self, institution: str, labels: Collection[str], deidentified: bool) -> bool:
        if self.deidentified and not deidentified:
            return False
        if self.any_study:
            return True
        return institution.strip().casefold() in self.institutions or any(
            label in self.labels for label in labels
        )


# None: every study. A tuple: the studies one of its rules admits (empty: none at all).
StudyScope = tuple[StudyRule, ...] | None


def _reads_studies(role: str) -> bool:
    try:
        return Permission.STUDIES_READ in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def study_scope(roles: Iterable[str], bindings: Iterable[RoleBinding] = ()) -> StudyScope:
    """The studies that `roles` (over every study) and `bindings` (over some) let one read."""
    rules: list[StudyRule] = []
    for role in roles:
        if not _reads_studies(role):
            continue
        if role != Role.RESEARCHER:
            return None
        rules.append(StudyRule(deidentified=True))
    for binding in bindings:
        if not _reads_studies(binding.role):
            continue
        institutions = frozenset(i.strip().casefold() for i in binding.scope.institutions)
        labels = frozenset(binding.scope.labels)
        if not institutions and not labels:
            continue  # a binding to no study reaches none
        rules.append(StudyRule(institutions, labels, binding.role == Role.RESEARCHER))
    return tuple(dict.fromkeys(rules))


def scope_models(scope: StudyScope) -> list[StudyRuleModel] | None:
    """A scope as our processes pass it to each other (the gateway to the API)."""
    if scope is None:
        return None
    return [
        StudyRuleModel(
            institutions=sorted(rule.institutions),
            labels=sorted(rule.labels),
            deidentified=rule.deidentified,
        )
        for rule in scope
    ]


def scope_from_models(models: list[StudyRuleModel] | None) -> StudyScope:
    if models is None:
        return None
    return tuple(
        StudyRule(
            frozenset(i.strip().casefold() for i in model.institutions),
            frozenset(model.labels),
            model.deidentified,
        )
        for model in models
    )
