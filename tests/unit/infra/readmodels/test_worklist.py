"""The worklist read model on an embedded chDB: versions, cancels, replays, rebuilds."""

from __future__ import annotations

import datetime as dt

import pytest

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.worklist import WorklistProjection
from schemas.events import (
    Event,
    MppsCompleted,
    MppsCreated,
    MppsDiscontinued,
    MppsUpdated,
    WorklistItemCancelled,
    WorklistItemScheduled,
    WorklistItemUpdated,
)
from schemas.mpps import MppsState, MppsStatus, ScheduledStepRef
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


@pytest.fixture
def projection(clickhouse: ClickHouse) -> WorklistProjection:
    projection = WorklistProjection(clickhouse)
    projection.ensure_tables()
    return projection


def test_newest_version_wins_cancel_hides_and_replay_changes_nothing(
    projection: WorklistProjection,
) -> None:
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


# ---- the step's state, from the MPPS events that reference the item --------------------

T0 = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)


def scheduled(
    item_id: str, study: str, accession: str = "", step_id: str = "", rp: str = ""
) -> Event:
    base = item(item_id, "CT1", 1)
    body = base.model_copy(
        update={
            "study_instance_uid": study,
            "accession_number": accession,
            "requested_procedure_id": rp,
            "scheduled_step": base.scheduled_step.model_copy(
                update={"step_id": step_id or item_id}
            ),
        }
    )
    return WorklistItemScheduled(item=body, study_instance_uid=study, patient_id=body.patient_id)


def mpps(
    kind: type[MppsCreated] | type[MppsUpdated] | type[MppsCompleted] | type[MppsDiscontinued],
    uid: str,
    *refs: ScheduledStepRef,
    minutes: int = 0,
) -> Event:
    status: MppsStatus = (
        "COMPLETED"
        if kind is MppsCompleted
        else "DISCONTINUED"
        if kind is MppsDiscontinued
        else "IN PROGRESS"
    )
    state = MppsState(sop_instance_uid=uid, status=status, scheduled_steps=list(refs))
    return kind(
        mpps=state,
        study_instance_uid=state.study_instance_uid,
        patient_id="",
        occurred_at=T0 + dt.timedelta(minutes=minutes),
    )


def ref(study: str = "", accession: str = "", step_id: str = "", rp: str = "") -> ScheduledStepRef:
    return ScheduledStepRef(
        study_instance_uid=study,
        accession_number=accession,
        scheduled_procedure_step_id=step_id,
        requested_procedure_id=rp,
    )


def on(partition: int, events: list[Event], first: int = 0) -> list[LogRecord]:
    return [
        LogRecord(partition, first + n, e, e.model_dump_json().encode())
        for n, e in enumerate(events)
    ]


def statuses(projection: WorklistProjection, query: WorklistQuery | None = None) -> dict[str, str]:
    return {i.item_id: i.step_status for i in projection.find(query or WorklistQuery())}


def test_mpps_in_progress_starts_the_item_and_completed_takes_it_off_the_worklist(
    projection: WorklistProjection,
) -> None:
    projection.apply(on(0, [scheduled("a", "1.2.1", "ACC-a"), scheduled("b", "1.2.2", "ACC-b")]))
    assert statuses(projection) == {"a": "SCHEDULED", "b": "SCHEDULED"}

    projection.apply(on(1, [mpps(MppsCreated, "9.1", ref("1.2.1", "ACC-a", "a"))]))
    assert statuses(projection) == {"a": "STARTED", "b": "SCHEDULED"}
    projection.apply(on(1, [mpps(MppsCompleted, "9.1", ref("1.2.1", "ACC-a", "a"), minutes=10)], 1))
    projection.apply(on(1, [mpps(MppsCreated, "9.2", ref("1.2.2", "ACC-b", "b"), minutes=20)], 2))
    projection.apply(
        on(1, [mpps(MppsDiscontinued, "9.2", ref("1.2.2", "ACC-b", "b"), minutes=30)], 3)
    )

    assert statuses(projection) == {}, "completed and discontinued items leave the worklist"
    a, b = projection.get("a"), projection.get("b")
    assert a is not None and a.step_status == "COMPLETED"
    assert a.step_status_since == T0 + dt.timedelta(minutes=10)
    assert a.performed_procedure_steps == ["9.1"]
    assert b is not None and b.step_status == "DISCONTINUED"
    # Kept for a while when asked (the keep window), always when asked by status.
    window = WorklistQuery(finished_since=T0 + dt.timedelta(minutes=15))
    assert statuses(projection, window) == {"b": "DISCONTINUED"}
    assert statuses(projection, WorklistQuery(step_status="COMPLETED")) == {"a": "COMPLETED"}
    assert statuses(projection, WorklistQuery(include_finished=True)) == {
        "a": "COMPLETED",
        "b": "DISCONTINUED",
    }
    assert projection.positions() == {0: 1, 1: 3}


def test_state_is_the_same_whatever_order_partitions_arrive_in_and_after_a_rebuild(
    projection: WorklistProjection,
) -> None:
    step = ref("1.2.1", "ACC-a", "a")
    items = on(0, [scheduled("a", "1.2.1", "ACC-a"), scheduled("z", "1.2.9")])
    steps = on(1, [mpps(MppsCreated, "9.1", step), mpps(MppsCompleted, "9.1", step, minutes=5)])
    projection.apply(steps)  # the MPPS partition is read first: the item is not known yet
    projection.apply(items)
    assert projection.find(WorklistQuery()) == [projection.get("z")]
    done = projection.get("a")
    assert done is not None and done.step_status == "COMPLETED"
    # A RIS correction after the exam changes the item, not what was performed.
    first = items[0].event
    assert isinstance(first, WorklistItemScheduled)
    corrected = first.item.model_copy(update={"patient_name": "Doe^Janet"})
    update = WorklistItemUpdated(item=corrected, study_instance_uid="1.2.1", patient_id="Pa")
    projection.apply(on(0, [update], 2))
    assert (again := projection.get("a")) is not None and again.step_status == "COMPLETED"
    assert again.patient_name == "Doe^Janet"

    projection.drop()
    projection.ensure_tables()
    projection.apply([*items, *on(0, [update], 2)])
    projection.apply(steps)
    rebuilt = projection.get("a")
    assert rebuilt == again


def test_an_mpps_references_an_item_by_study_or_accession_and_must_agree_on_the_rest(
    projection: WorklistProjection,
) -> None:
    projection.apply(
        on(
            0,
            [
                # Two steps scheduled under one study: the step id tells them apart.
                scheduled("s1", "1.2.7", "ACC-7", step_id="S1"),
                scheduled("s2", "1.2.7", "ACC-7", step_id="S2"),
                scheduled("acc", "1.2.8", "ACC-8", step_id="X"),
                scheduled("idle", "1.2.9", "ACC-9", step_id="X"),
                scheduled("rp1", "1.2.10", step_id="X", rp="RP1"),
                scheduled("rp2", "1.2.11", step_id="X", rp="RP2"),
            ],
        )
    )
    projection.apply(
        on(
            1,
            [
                mpps(MppsCreated, "9.1", ref("1.2.7", step_id="S2")),
                mpps(MppsCreated, "9.2", ref(accession="ACC-8", step_id="X")),
                mpps(MppsCreated, "9.3", ref(step_id="X")),  # an SPS ID alone is not unique
                mpps(MppsCreated, "9.4", ref("1.2.9", step_id="OTHER")),  # disagrees
                mpps(MppsCreated, "9.7", ref("1.2.10", step_id="X", rp="RP1")),
                mpps(MppsCreated, "9.8", ref("1.2.11", step_id="X", rp="RP1")),  # disagrees
            ],
        )
    )
    assert statuses(projection) == {
        "s1": "SCHEDULED",
        "s2": "STARTED",
        "acc": "STARTED",
        "idle": "SCHEDULED",
        "rp1": "STARTED",
        "rp2": "SCHEDULED",
    }
    # Discontinued, then performed again: STARTED; once one completes, COMPLETED for good.
    projection.apply(
        on(
            1,
            [
                mpps(MppsDiscontinued, "9.1", ref("1.2.7", step_id="S2"), minutes=1),
                mpps(MppsCreated, "9.5", ref("1.2.7", step_id="S2"), minutes=2),
            ],
            6,
        )
    )
    assert statuses(projection)["s2"] == "STARTED"
    projection.apply(on(1, [mpps(MppsCompleted, "9.5", ref("1.2.7", step_id="S2"), minutes=3)], 8))
    s2 = projection.get("s2")
    assert s2 is not None and s2.step_status == "COMPLETED"
    assert s2.performed_procedure_steps == ["9.1", "9.5"]
    # One MPPS performing two scheduled steps (group case) completes both.
    projection.apply(
        on(
            1,
            [
                mpps(MppsCompleted, "9.6", ref("1.2.7", step_id="S1"), ref("1.2.9", step_id="X")),
            ],
            9,
        )
    )
    assert set(statuses(projection)) == {"acc", "rp1", "rp2"}
