"""PrefetchWorkflow on the time-skipping test server, with stand-in activities: the chosen
studies are pulled in turn, one that keeps failing is retried and then reported (the others
still arrive), the end is an event, and progress counts the pulls."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from schemas.prefetch import (
    FindPriors,
    LocalCounts,
    PrefetchInput,
    PrefetchResult,
    Pulled,
    PullStudy,
    RemoteStudy,
)
from schemas.workflows import PublishEvents
from tests.workflows.time_skipping import start_env
from workflows.prefetch import PrefetchWorkflow, search_attributes


class FakeSources:
    def __init__(self) -> None:
        self.pull_attempts: dict[str, int] = {}
        self.events: list[object] = []

    @activity.defn(name="find_priors")
    async def find_priors(self, request: FindPriors) -> list[RemoteStudy]:
        assert request.patient_id == "PAT-1"
        return [
            RemoteStudy(source="a", study_instance_uid=uid, study_date=date(2026, 1, day),
                        modalities=["CT"], instances=5)
            for uid, day in (("s1", 3), ("broken", 2), ("here", 1))
        ]  # fmt: skip

    @activity.defn(name="local_counts")
    async def local_counts(self, request: LocalCounts) -> dict[str, int]:
        return {"here": 5}

    @activity.defn(name="pull_study")
    async def pull_study(self, request: PullStudy) -> Pulled:
        uid = request.study.study_instance_uid
        self.pull_attempts[uid] = self.pull_attempts.get(uid, 0) + 1
        if uid == "broken":
            raise ApplicationError("C-GET refused: 0xA702")
        return Pulled(study_instance_uid=uid, source="a", received=5)

    @activity.defn(name="publish_events")
    async def publish_events(self, request: PublishEvents) -> None:
        self.events.extend(request.events)


async def test_pulls_what_is_chosen_and_reports_what_cannot_be_pulled() -> None:
    fake = FakeSources()
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        job = PrefetchInput(patient_id="PAT-1", accession_number="ACC-1", sources=["a"],
                            deadline=await env.get_current_time() + timedelta(hours=1))  # fmt: skip
        async with Worker(
            env.client, task_queue=queue, workflows=[PrefetchWorkflow],
            activities=[fake.find_priors, fake.local_counts, fake.pull_study,
                        fake.publish_events],
        ):  # fmt: skip
            handle = await env.client.start_workflow(
                PrefetchWorkflow.run, job, id=f"prefetch:{queue}", task_queue=queue,
                search_attributes=search_attributes(job), result_type=PrefetchResult,
            )  # fmt: skip
            result = await handle.result()
            progress = await handle.query(PrefetchWorkflow.progress)
    assert [p.study_instance_uid for p in result.pulled] == ["s1"]
    assert len(result.failed) == 1 and result.failed[0].startswith("broken:")
    assert fake.pull_attempts == {"s1": 1, "broken": 6}  # retried, then given up
    decided = {d.study.study_instance_uid: d.decision for d in result.decisions}
    assert decided == {"s1": "pull", "broken": "pull", "here": "complete here"}
    assert (progress.done, progress.total, progress.stage) == (2, 2, "done")
    assert not result.late
    (event,) = fake.events
    assert event.type == "pacs.prefetch.completed"  # type: ignore[attr-defined]
    assert (event.pulled, event.skipped, event.failed) == (["s1"], ["here"], ["broken"])  # type: ignore[attr-defined]
