"""The events read model's queries on an embedded chDB: filters, order, change-feed paging."""

from __future__ import annotations

import datetime as dt

import pytest

from infra.clickhouse import ClickHouse
from infra.readmodels.audit import AuditProjection, AuditTrail
from schemas.audit import AccessEntry
from schemas.events import AccessAudited, Event, WorklistItemCancelled, WorklistItemScheduled
from tests.unit.infra.readmodels.test_worklist import item, records


def scheduled(item_id: str, day: int) -> WorklistItemScheduled:
    body = item(item_id, "CT1", day)
    return WorklistItemScheduled(
        item=body, study_instance_uid=body.study_instance_uid, patient_id=body.patient_id
    )


START = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def trail(clickhouse: ClickHouse) -> AuditTrail:
    projection = AuditProjection(clickhouse)
    projection.ensure_tables()
    events: list[Event] = [
        scheduled("a", 1),
        scheduled("b", 2),
        WorklistItemCancelled(item_id="a", study_instance_uid="1.2.1", patient_id="Pa"),
        scheduled("c", 1),
    ]
    for n, event in enumerate(events):  # a second apart: the trail is in time order
        event.occurred_at = START + dt.timedelta(seconds=n)
    batch = records(events)
    projection.apply(batch)
    projection.apply(batch[:2])  # a repeated delivery counts once
    return AuditTrail(clickhouse)


def test_events_filter_by_study_and_type(trail: AuditTrail) -> None:
    assert len(trail.events(None, None, 100)) == 4
    study = trail.events("1.2.1", None, 100)
    assert [e.type for e in study] == [
        "pacs.worklist.item-scheduled",
        "pacs.worklist.item-cancelled",
        "pacs.worklist.item-scheduled",
    ]
    cancelled = trail.events("1.2.1", "pacs.worklist.item-cancelled", 100)
    assert [e.study_instance_uid for e in cancelled] == ["1.2.1"]
    assert len(trail.events(None, None, 2)) == 2


def test_change_feed_pages_to_the_end(trail: AuditTrail) -> None:
    first = trail.changes(since=-1, limit=3)
    assert [c.seq for c in first.changes] == [0, 1, 2] and not first.done
    rest = trail.changes(since=first.last, limit=3)
    assert [c.seq for c in rest.changes] == [3] and rest.done
    assert trail.changes(since=rest.last, limit=3).changes == []
    one_study = trail.changes(since=-1, limit=10, study_instance_uid="1.2.2")
    assert [c.seq for c in one_study.changes] == [1] and one_study.done


def test_accesses_filter_page_and_find_a_patients_studies(clickhouse: ClickHouse) -> None:
    projection = AuditProjection(clickhouse)
    projection.ensure_tables()
    # The catalog's study table, as the audit query joins it for a patient filter.
    clickhouse.command(
        "CREATE TABLE studies (study_instance_uid String, patient_id String)"
        " ENGINE = ReplacingMergeTree ORDER BY study_instance_uid"
    )
    clickhouse.insert("studies", [["1.2.7", "P7"]], ["study_instance_uid", "patient_id"])
    entries = [
        AccessEntry(action="qido", outcome="success", actor="alice", via="token",
                    patient_id="P7", study_instance_uid="1.2.7", occurred_at=START),
        AccessEntry(action="wado", outcome="success", actor="bob", via="token",
                    study_instance_uid="1.2.7", occurred_at=START + dt.timedelta(seconds=1)),
        AccessEntry(action="wado", outcome="failure", actor="bob", via="token",
                    study_instance_uid="1.2.8", occurred_at=START + dt.timedelta(seconds=2)),
        AccessEntry(action="c-find", outcome="success", actor="WS1", via="dimse",
                    study_instance_uid="1.2.9", occurred_at=START + dt.timedelta(seconds=3)),
    ]  # fmt: skip
    batch = records([AccessAudited(source="api", entries=entries)])
    projection.apply(batch)
    projection.apply(batch)  # a replay rewrites the same rows
    trail = AuditTrail(clickhouse)
    everything = trail.accesses()
    assert [e.actor for e in everything.entries] == ["WS1", "bob", "bob", "alice"]  # newest first
    assert {e.actor for e in trail.accesses(patient_id="P7").entries} == {"alice", "bob"}
    assert [e.study_instance_uid for e in trail.accesses(outcome="failure").entries] == ["1.2.8"]
    page = trail.accesses(limit=3)
    assert len(page.entries) == 3 and not page.done and page.offset == 3
    rest = trail.accesses(limit=3, offset=page.offset)
    assert len(rest.entries) == 1 and rest.done
    window = trail.accesses(
        since=START + dt.timedelta(seconds=1), until=START + dt.timedelta(seconds=3)
    )
    assert [e.action for e in window.entries] == ["wado", "wado"]
