"""A series' stored metadata: each instance once, its newest version, in instance order,
whatever parts the versions landed in and however often a batch was replayed."""

from __future__ import annotations

import json
from pathlib import Path

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.catalog.projection import CatalogProjection
from infra.readmodels.catalog.search import CatalogReader
from tests.synthetic import synthetic_events


def test_newest_version_of_each_instance_once_in_order(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    try:
        projection = CatalogProjection(clickhouse)
        projection.ensure_tables()
        events = list(synthetic_events(12, per_series=6, series_per_study=2, seed=5))
        first = events[0]
        assert first.metadata is not None
        # A later version of the first instance (a duplicate the policy let replace it).
        changed = dict(first.metadata) | {"00081030": {"vr": "LO", "Value": ["VERSION 2"]}}
        newer = first.model_copy(update={"metadata": changed})
        records = [LogRecord(0, n, e, b"") for n, e in enumerate(events)]
        projection.apply(records)
        projection.apply([LogRecord(0, len(events), newer, b"")])
        projection.apply(records[:3])  # a replay of old records changes nothing
        reader = CatalogReader(clickhouse)
        study = first.instance.study_instance_uid
        series = first.instance.series_instance_uid
        items = [json.loads(m) for m in reader.metadata(study, series)]
        sops = [m["00080018"]["Value"][0] for m in items]
        expected = [
            e.instance.sop_instance_uid for e in events if e.instance.series_instance_uid == series
        ]
        assert sorted(sops) == sorted(expected) and len(sops) == len(set(sops))
        numbers = [m["00200013"]["Value"][0] for m in items]
        assert numbers == sorted(numbers)
        mine = next(
            m for m in items if m["00080018"]["Value"][0] == first.instance.sop_instance_uid
        )
        assert mine["00081030"]["Value"] == ["VERSION 2"]
        assert len(reader.metadata(study)) == len(
            [e for e in events if e.instance.study_instance_uid == study]
        )
    finally:
        clickhouse.close()
