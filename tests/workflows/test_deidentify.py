"""DeidentificationWorkflow with stand-in activities: the steps in order, the result, a
refusal that fails the job with its reason, and the saved history replays."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

from schemas.deidentify import (
    DeidentificationInput,
    DeidentifyOptions,
    Delivered,
    DeliverInput,
    StagedStudy,
)
from schemas.events import Event, StudyDeidentified
from schemas.workflows import PublishEvents
from tests.workflows.time_skipping import start_env
from workflows.deidentify import (
    DeidentificationWorkflow,
    deidentification_workflow_id,
    search_attributes,
)

HISTORY = Path(__file__).parent.parent / "histories" / "deidentify_to_zip.json"
JOB = "0123456789abcdef0123456789abcdef"


class StandIns:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.calls: list[str] = []
        self.events: list[Event] = []

    @activity.defn(name="deidentify_study")
    async def deidentify_study(self, job: DeidentificationInput) -> StagedStudy:
        self.calls.append("deidentify")
        if self.refuse:
            raise ApplicationError(
                "instance 1.2 declares BurnedInAnnotation YES", non_retryable=True
            )
        return StagedStudy(
            job_id=job.job_id,
            study_instance_uid="2.25.42",
            instance_count=5,
            series_count=2,
            staging_prefix=f"deidentify/{job.job_id}/staged/",
            map_key=f"deidentify/{job.job_id}/map.json",
        )

    @activity.defn(name="deliver_copy")
    async def deliver_copy(self, deliver: DeliverInput) -> Delivered:
        self.calls.append(f"deliver:{deliver.target}")
        return Delivered(delivered=5, zip_key=f"deidentify/{deliver.job_id}/study.zip")

    @activity.defn(name="drop_staged")
    async def drop_staged(self, deliver: DeliverInput) -> int:
        self.calls.append("drop")
        return 5

    @activity.defn(name="publish_events")
    async def publish_events(self, request: PublishEvents) -> None:
        self.calls.extend(event.type for event in request.events)
        self.events.extend(request.events)


def job() -> DeidentificationInput:
    return DeidentificationInput(
        job_id=JOB,
        study_instance_uid="1.2.3",
        options=DeidentifyOptions(),
        target="zip",
        requested_by="dr.x",
    )


async def run(stand_ins: StandIns) -> tuple[object, str]:
    env = await start_env()
    queue = str(uuid.uuid4())
    try:
        activities = [
            stand_ins.deidentify_study,
            stand_ins.deliver_copy,
            stand_ins.drop_staged,
            stand_ins.publish_events,
        ]
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[DeidentificationWorkflow],
            activities=activities,
        ):
            handle = await env.client.start_workflow(
                DeidentificationWorkflow.run,
                job(),
                id=deidentification_workflow_id(JOB),
                task_queue=queue,
                search_attributes=search_attributes(job()),
            )
            try:
                result: object = await handle.result()
            except WorkflowFailureError as exc:
                result = exc
            history = (await handle.fetch_history()).to_json()
            return result, history
    finally:
        await env.shutdown()


async def test_the_copy_is_made_then_delivered_then_staging_dropped() -> None:
    stand_ins = StandIns()
    result, history = await run(stand_ins)
    assert stand_ins.calls == ["deidentify", "deliver:zip", "drop", "pacs.study.deidentified"]
    announced = stand_ins.events[0]
    assert isinstance(announced, StudyDeidentified)
    assert (announced.study_instance_uid, announced.job_id, announced.actor) == (
        "1.2.3",
        JOB,
        "dr.x",
    )
    assert announced.instance_count == 5 and announced.target == "zip"
    assert getattr(result, "study_instance_uid", None) == "2.25.42"
    assert getattr(result, "zip_available", None) is True
    if os.environ.get("PACS_SAVE_HISTORIES"):
        HISTORY.write_text(history)


async def test_a_refusal_fails_the_job_with_its_reason_and_delivers_nothing() -> None:
    stand_ins = StandIns(refuse=True)
    result, _ = await run(stand_ins)
    assert isinstance(result, WorkflowFailureError)
    assert "BurnedInAnnotation" in str(result.cause.cause)
    assert stand_ins.calls == ["deidentify"]


async def test_the_saved_history_replays() -> None:
    if not HISTORY.exists():
        pytest.fail(f"{HISTORY} is missing: run this file with PACS_SAVE_HISTORIES=1")
    history = WorkflowHistory.from_json(deidentification_workflow_id(JOB), HISTORY.read_text())
    replayer = Replayer(
        workflows=[DeidentificationWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
