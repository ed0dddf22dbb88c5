"""The dispatcher's prefetcher: which rule a scheduled procedure matches, and the
prefetch it asks for (deadline at the scheduled start, in the platform's zone)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from apps.prefetcher import matching_rule, prefetch_input
from schemas.events import WorklistItemScheduled
from schemas.prefetch import PrefetchRule
from schemas.worklist import ScheduledStep, WorklistItem


def item(modality: str = "CT", station: str = "CT1") -> WorklistItem:
    step = ScheduledStep(step_id="S1", station_ae_title=station, modality=modality,
                         start_date=date(2026, 12, 3), start_time=time(9, 30))  # fmt: skip
    return WorklistItem(patient_name="P^Q", patient_id="PAT-1", accession_number="ACC-1",
                        scheduled_step=step, item_id="i1", study_instance_uid="1.2.3")  # fmt: skip


def rule(name: str, **fields: object) -> PrefetchRule:
    return PrefetchRule.model_validate({"name": name, "version": 1, "sources": ["a"], **fields})


def test_the_first_enabled_matching_rule_by_name_applies() -> None:
    rules = [
        rule("z-any"),
        rule("b-mr", match={"Modality": "MR"}),
        rule("a-off", enabled=False),
        rule("c-ct1", match={"Modality": "CT", "ScheduledStationAETitle": "CT?"}),
    ]
    assert (matching_rule(rules, item()) or rule("none")).name == "c-ct1"
    assert (matching_rule(rules, item(modality="US")) or rule("none")).name == "z-any"
    assert matching_rule(rules[1:3], item()) is None


def test_the_prefetch_carries_the_rule_the_patient_and_the_deadline() -> None:
    event = WorklistItemScheduled(item=item(), study_instance_uid="1.2.3", patient_id="PAT-1")
    job = prefetch_input(rule("r", via="wado", max_studies=2), event, "Europe/Paris")
    assert (job.patient_id, job.accession_number, job.study_instance_uid) == (
        "PAT-1",
        "ACC-1",
        "1.2.3",
    )
    assert (job.via, job.max_studies, job.rule, job.sources) == ("wado", 2, "r", ["a"])
    assert job.deadline == datetime(2026, 12, 3, 8, 30, tzinfo=UTC)  # 09:30 in Paris
