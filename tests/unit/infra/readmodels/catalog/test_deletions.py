"""Deletions in the catalog: what a deletion covers leaves every level (counts recomputed
from what is left), in the resident copy too; what arrives again after it is listed again;
and a replayed batch ends the same."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.catalog.attributes import Level
from infra.readmodels.catalog.projection import CatalogProjection
from infra.readmodels.catalog.resident import ResidentCatalog
from infra.readmodels.catalog.search import CatalogReader, Search
from schemas.catalog import InstanceQuery
from schemas.events import Event, InstanceReceived, InstancesDeleted
from schemas.lifecycle import DeletionScope
from tests.synthetic import synthetic_events


def deletion(study: str, series: str = "", *sops: str) -> InstancesDeleted:
    return InstancesDeleted(
        deletion_id="d1",
        scope=DeletionScope(
            study_instance_uid=study, series_instance_uid=series, sop_instance_uids=list(sops)
        ),
        actor="admin",
        purge_after=datetime(2026, 12, 9, tzinfo=UTC),
    )


def test_deleted_instances_series_and_studies_leave_every_level(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    resident = ResidentCatalog(clickhouse)
    projection = CatalogProjection(clickhouse, resident)
    projection.ensure_tables()
    received = list(synthetic_events(24, per_series=4, series_per_study=2, seed=3))
    first = received[0].instance
    study, series = first.study_instance_uid, first.series_instance_uid
    same_study = [e for e in received if e.instance.study_instance_uid == study]
    assert len(same_study) == 8
    other_series = next(e for e in same_study if e.instance.series_instance_uid != series)
    second = next(e for e in same_study[1:] if e.instance.series_instance_uid == series)
    records = [LogRecord(0, n, e, b"") for n, e in enumerate(received)]
    projection.apply(records[:10])
    projection.apply(records[10:])
    reader = CatalogReader(clickhouse, resident)

    def study_row(uid: str) -> list[dict[str, dict[str, list[object]]]]:
        return reader.search(Search(Level.STUDY, {"StudyInstanceUID": uid})).rows

    # Two instances of a series (what a rejection note lists): 6 left, then the series.
    two = deletion(study, series, first.sop_instance_uid, second.instance.sop_instance_uid)
    projection.apply([LogRecord(0, len(received), two, b"")])
    [row] = study_row(study)
    assert row["00201208"]["Value"] == [6] and row["00201206"]["Value"] == [2]
    events: list[Event] = [*received, two, deletion(study, series)]
    projection.apply([LogRecord(0, len(events) - 1, events[-1], b"")])
    projection.apply([LogRecord(0, n, e, b"") for n, e in enumerate(events)][10:])  # a replay
    [row] = study_row(study)
    assert row["00201208"]["Value"] == [4] and row["00201206"]["Value"] == [1]
    left = reader.instances(InstanceQuery(study_instance_uids=[study]))
    assert {i.series_instance_uid for i in left} == {other_series.instance.series_instance_uid}

    # The whole study: gone from every level, its patient's counts with it.
    patient = received[0].patient_id
    before = reader.search(Search(Level.PATIENT, {"PatientID": patient})).rows
    projection.apply([LogRecord(0, len(events), deletion(study), b"")])
    assert study_row(study) == []
    assert reader.instances(InstanceQuery(study_instance_uids=[study])) == []
    assert reader.search(Search(Level.SERIES, {"StudyInstanceUID": study})).rows == []
    after = reader.search(Search(Level.PATIENT, {"PatientID": patient})).rows
    studies_of = [int(str(r["00201200"]["Value"][0])) for r in (*before, *after)]
    assert studies_of[0] - (studies_of[1] if after else 0) == 1

    # Received again after the deletion: a new arrival, listed again.
    again = InstanceReceived.model_validate(received[0].model_dump())
    projection.apply([LogRecord(0, len(events) + 1, again, b"")])
    assert [r["00201208"]["Value"] for r in study_row(study)] == [[1]]
