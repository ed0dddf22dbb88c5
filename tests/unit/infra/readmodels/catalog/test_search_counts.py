"""Counts per patient, study and series equal what the events say, however they were batched
(patients are aggregated from study rows, studies and series from instance rows)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.catalog.attributes import Level
from infra.readmodels.catalog.projection import CatalogProjection
from infra.readmodels.catalog.search import CatalogReader, Search
from tests.synthetic import synthetic_events


def value(row: dict[str, dict[str, list[object]]], tag: str) -> object:
    return row[tag]["Value"][0]


def test_counts_match_the_events_across_batches_and_replays(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    projection = CatalogProjection(clickhouse)
    projection.ensure_tables()
    events = list(synthetic_events(700, per_series=7, series_per_study=3, seed=11))
    records = [LogRecord(0, n, e, b"") for n, e in enumerate(events)]
    # Uneven batches split studies and patients; the middle batch is then replayed.
    for start, end in ((0, 100), (100, 401), (401, 700), (100, 401)):
        projection.apply(records[start:end])

    studies: dict[str, set[str]] = defaultdict(set)
    series: dict[str, set[str]] = defaultdict(set)
    instances: dict[str, int] = defaultdict(int)
    for event in events:
        studies[event.patient_id].add(event.instance.study_instance_uid)
        series[event.patient_id].add(event.instance.series_instance_uid)
        instances[event.patient_id] += 1

    reader = CatalogReader(clickhouse)
    patients = reader.search(Search(Level.PATIENT, limit=1000)).rows
    assert len(patients) == len(studies) > 10
    for row in patients:
        patient = str(value(row, "00100020"))
        assert value(row, "00201200") == len(studies[patient])
        assert value(row, "00201202") == len(series[patient])
        assert value(row, "00201204") == instances[patient]
    study_rows = reader.search(Search(Level.STUDY, limit=1000)).rows
    assert sum(int(str(value(r, "00201208"))) for r in study_rows) == len(events)
    assert {value(r, "00201206") for r in study_rows} <= {1, 2, 3}
