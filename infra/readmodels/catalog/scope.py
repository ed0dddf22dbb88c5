"""The studies (and their patients) a caller's scope admits, from the catalog.

Each study's InstitutionName, PatientIdentityRemoved and access labels are read in one
query at most every SNAPSHOT_SECONDS and shared by every scope; a scope's answer is kept
with the snapshot it came from. A caller without a scope (None) never comes here, so
unscoped searches cost nothing more.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from infra.auth.scope import StudyRule
from infra.clickhouse import ClickHouse

# A study stored or labelled just now is visible to scoped callers within this much more.
SNAPSHOT_SECONDS = 1.0

_SNAPSHOT_SQL = """
SELECT s.study_instance_uid, s.patient_id, s.institution_name, s.patient_identity_removed,
       l.labels
FROM studies AS s FINAL
LEFT JOIN (SELECT study_instance_uid, labels FROM study_labels FINAL) AS l
    USING study_instance_uid
"""


@dataclass(frozen=True)
class Visible:
    studies: frozenset[str]
    patients: frozenset[str]


@dataclass(frozen=True)
class _Study:
    uid: str
    patient_id: str
    institution: str
    deidentified: bool
    labels: tuple[str, ...]


class VisibleStudies:
    """Thread-safe; blocking (ClickHouse), so called from worker threads."""

    def __init__(self, clickhouse: ClickHouse, snapshot_seconds: float = SNAPSHOT_SECONDS) -> None:
        self.clickhouse = clickhouse
        self.snapshot_seconds = snapshot_seconds
        self._lock = threading.Lock()
        self._taken = -float("inf")
        self._studies: list[_Study] = []
        self._answers: dict[tuple[StudyRule, ...], Visible] = {}

    def of(self, scope: tuple[StudyRule, ...]) -> Visible:
        with self._lock:
            if time.monotonic() - self._taken >= self.snapshot_seconds:
                self._studies = self._snapshot()
                self._answers = {}
                self._taken = time.monotonic()
            answer = self._answers.get(scope)
            if answer is None:
                admitted = [s for s in self._studies if _admitted(scope, s)]
                answer = Visible(
                    frozenset(s.uid for s in admitted), frozenset(s.patient_id for s in admitted)
                )
                self._answers[scope] = answer
            return answer

    def admits(self, scope: tuple[StudyRule, ...], study_instance_uid: str) -> bool:
        return study_instance_uid in self.of(scope).studies

    def _snapshot(self) -> list[_Study]:
        return [
            _Study(
                str(uid),
                str(patient),
                str(institution),
                str(removed).strip().upper() == "YES",
                tuple(labels or ()),
            )
            for uid, patient, institution, removed, labels in self.clickhouse.rows(_SNAPSHOT_SQL)
        ]


def _admitted(scope: tuple[StudyRule, ...], study: _Study) -> bool:
    return any(rule.admits(study.institution, study.labels, study.deidentified) for rule in scope)
