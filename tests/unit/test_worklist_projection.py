"""The worklist read model on an embedded chDB: versions, cancels, replays, rebuilds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from infra.clickhouse import ClickHouse
from infra.projections.base import LogRecord
from infra.projections.worklist import WorklistProjection
from schemas.events import Event, WorklistItemCancelled, WorklistItemScheduled, WorklistItemUpdated
from schemas.worklist import ScheduledStep, WorklistItem, WorklistQuery


def item(item_id: str, station: str, day: int) -> WorklistItem:
    return WorklistItem(
        item_id=item_id,
        patient_name="Doe^Jane",
        patient_id=f"P{item_id}",
        study_instance_uid=f"1.2.{day}",
        scheduled_step=ScheduledStep(
            step_id=item_id,
            station_ae_title=station,
            modality="CT",
            start_date=dt.date(2024, 1, day),
        ),
    )


def records(events: list[Event]) -> list[LogRecord]:
    return [LogRecord(0, n, e, e.model_dump_json().encode()) for n, e in enumerate(events)]


def test_newest_version_wins_cancel_hides_and_replay_changes_nothing(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    projection = WorklistProjection(clickhouse)
    projection.ensure_tables()
    a, b = item("a", "CT1", 1), item("b", "CT2", 2)
    moved = item("a", "CT1", 3)
    log = records(
        [
            WorklistItemScheduled(item=a, study_instance_uid="1", patient_id="Pa"),
            WorklistItemScheduled(item=b, study_instance_uid="2", patient_id="Pb"),
            WorklistItemUpdated(item=moved, study_instance_uid="1", patient_id="Pa"),
            WorklistItemCancelled(item_id="b", study_instance_uid="2", patient_id="Pb"),
        ]
    )
    projection.apply(log[:2])
    projection.apply(log[2:])
    projection.apply(log)  # a replay after a crash
    everything = projection.find(WorklistQuery())
    assert [(i.item_id, i.scheduled_step.start_date.day) for i in everything] == [("a", 3)]
    assert (
        projection.find(WorklistQuery(date_from=dt.date(2024, 1, 1), date_to=dt.date(2024, 1, 2)))
        == []
    )
    cancelled = projection.get("b")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert projection.positions() == {0: 3}
    projection.drop()
    projection.ensure_tables()
    projection.apply(log)
    assert [i.item_id for i in projection.find(WorklistQuery(station_ae_title="CT1"))] == ["a"]
    clickhouse.close()
