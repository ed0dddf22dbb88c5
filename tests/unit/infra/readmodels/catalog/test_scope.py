"""A scoped caller's searches see only the studies its scope admits, at every level."""

from __future__ import annotations

from typing import Any

from infra.auth.scope import StudyRule
from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.catalog.attributes import Level
from infra.readmodels.catalog.projection import CatalogProjection
from infra.readmodels.catalog.resident import ResidentCatalog
from infra.readmodels.catalog.scope import VisibleStudies
from infra.readmodels.catalog.search import CatalogReader, Search
from schemas.events import InstanceReceived, StudyLabelsSet
from tests.synthetic import synthetic_events

INSTITUTIONS = ["St. Mary", "General", "St. Mary", "General", "Clinic"]


def _catalog(clickhouse: ClickHouse) -> tuple[list[InstanceReceived], CatalogReader]:
    events = list(synthetic_events(50, per_series=5, series_per_study=2, seed=3))
    studies = sorted({e.instance.study_instance_uid for e in events})
    assert len(studies) == 5
    for event in events:
        index = studies.index(event.instance.study_instance_uid)
        assert event.metadata is not None
        event.metadata["00080080"] = {"vr": "LO", "Value": [INSTITUTIONS[index]]}
        if index == 4:
            event.metadata["00120062"] = {"vr": "CS", "Value": ["YES"]}
    resident = ResidentCatalog(clickhouse)
    projection = CatalogProjection(clickhouse, resident)
    projection.ensure_tables()
    records: list[LogRecord] = [LogRecord(0, n, e, b"") for n, e in enumerate(events)]
    label = StudyLabelsSet(study_instance_uid=studies[1], labels=["trial-7"], actor="admin")
    projection.apply([*records, LogRecord(0, len(records), label, b"")])
    return events, CatalogReader(clickhouse, resident)


def _uids(rows: list[dict[str, Any]], tag: str = "0020000D") -> set[str]:
    return {row[tag]["Value"][0] for row in rows}


def test_searches_return_only_admitted_studies_at_every_level(clickhouse: ClickHouse) -> None:
    events, reader = _catalog(clickhouse)
    studies = sorted({e.instance.study_instance_uid for e in events})
    visible = VisibleStudies(clickhouse)
    mary = (StudyRule(institutions=frozenset({"st. mary"})),)
    trial = (StudyRule(labels=frozenset({"trial-7"})),)
    research = (StudyRule(deidentified=True),)
    assert visible.of(mary).studies == {studies[0], studies[2]}
    assert visible.of(trial).studies == {studies[1]}
    assert visible.of(research).studies == {studies[4]}
    assert visible.of((*mary, *trial)).studies == {studies[0], studies[1], studies[2]}
    assert visible.of(()).studies == frozenset()

    for level in (Level.STUDY, Level.SERIES, Level.IMAGE):
        for scope in (mary, trial, research):
            rows = reader.search(Search(level, within=visible.of(scope))).rows
            assert rows and _uids(rows) == visible.of(scope).studies
    # A query naming a study outside the scope finds nothing, as if it were not stored.
    named = Search(Level.SERIES, {"StudyInstanceUID": studies[1]}, within=visible.of(mary))
    assert reader.search(named).rows == []
    patients = reader.search(Search(Level.PATIENT, within=visible.of(trial))).rows
    assert _uids(patients, "00100020") == visible.of(trial).patients
    # From ClickHouse too (the resident levels hold only what fits).
    assert _uids(
        CatalogReader(clickhouse).search(Search(Level.STUDY, within=visible.of(mary))).rows
    ) == {
        studies[0],
        studies[2],
    }
    assert reader.labels(studies[1]) == ["trial-7"]
    assert reader.labels(studies[0]) == []


def test_a_catalog_without_the_scope_columns_is_rebuilt(clickhouse: ClickHouse) -> None:
    _catalog(clickhouse)
    clickhouse.command("ALTER TABLE studies DROP COLUMN institution_name")
    projection = CatalogProjection(clickhouse)
    projection.ensure_tables()
    assert projection.positions() == {}, "dropped, to be replayed from the log"
    columns = {
        r[0] for r in clickhouse.rows("SELECT name FROM system.columns WHERE table = 'studies'")
    }
    assert "institution_name" in columns
