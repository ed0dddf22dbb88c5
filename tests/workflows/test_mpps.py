"""MppsWorkflow on the time-skipping test server, with stand-in activities."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from infra.dicom.statuses import PROCESSING_FAILURE, SUCCESS
from schemas.mpps import (
    InstanceCheck,
    InstanceCheckResult,
    MppsAttributes,
    MppsSet,
    MppsStart,
    MppsState,
    MppsView,
    PerformedSeries,
    ScheduledStepRef,
    WorklistLinkRequest,
    WorklistLinkResult,
)
from schemas.workflows import PublishEvents
from tests.workflows.time_skipping import start_env
from workflows.mpps import MppsWorkflow

HISTORIES = Path(__file__).parent.parent / "histories"


class FakeMppsActivities:
    def __init__(self, arrivals: list[set[str]]) -> None:
        self.events: list[str] = []
        self.links: list[WorklistLinkRequest] = []
        # What the catalog holds at each successive check (the last one repeats).
        self.arrivals = arrivals
        self.checks = 0

    @activity.defn(name="publish_events")
    async def publish_events(self, request: PublishEvents) -> None:
        self.events.extend(e.type for e in request.events)

    @activity.defn(name="find_worklist_item")
    async def find_worklist_item(self, request: WorklistLinkRequest) -> WorklistLinkResult:
        self.links.append(request)
        return WorklistLinkResult(item_id="item-1", matched_by="accession_number")

    @activity.defn(name="check_instances")
    async def check_instances(self, request: InstanceCheck) -> InstanceCheckResult:
        held = self.arrivals[min(self.checks, len(self.arrivals) - 1)]
        self.checks += 1
        return InstanceCheckResult(found=[u for u in request.sop_instance_uids if u in held])


STATE = MppsState(
    sop_instance_uid="1.2.3.99",
    calling_ae="CT1",
    patient_id="P1",
    modality="CT",
    scheduled_steps=[ScheduledStepRef(study_instance_uid="1.2.3", accession_number="A1")],
)
COMPLETED = MppsAttributes(
    status="COMPLETED",
    end_date="20240101",
    performed_series=[PerformedSeries(series_instance_uid="1.2.3.4", sop_instance_uids=["a", "b"])],
)


async def drive(
    fake: FakeMppsActivities, steps: list[MppsAttributes], save_as: str | None = None
) -> tuple[list[int], MppsView]:
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[MppsWorkflow],
            activities=[fake.publish_events, fake.find_worklist_item, fake.check_instances],
        ):
            handle: WorkflowHandle[MppsWorkflow, MppsView] = await env.client.start_workflow(
                MppsWorkflow.run,
                MppsStart(state=STATE, verify_timeout_seconds=300, verify_poll_seconds=10),
                id=f"mpps:{queue}",
                task_queue=queue,
            )
            statuses = []
            for attributes in steps:
                result = await handle.execute_update(
                    MppsWorkflow.n_set, MppsSet(attributes=attributes)
                )
                statuses.append(result.status)
            view = await handle.result()
            if save_as:
                (HISTORIES / save_as).write_text((await handle.fetch_history()).to_json())
            return statuses, view


async def test_completed_step_is_final_linked_and_its_instances_verified() -> None:
    fake = FakeMppsActivities(arrivals=[{"a"}, {"a", "b"}])
    in_progress = MppsAttributes(description="contrast run")
    statuses, view = await drive(fake, [in_progress, COMPLETED, in_progress])
    assert statuses == [SUCCESS, SUCCESS, PROCESSING_FAILURE]
    assert view.state.status == "COMPLETED" and view.state.description == "contrast run"
    assert view.worklist_item_id == "item-1"
    assert view.verification is not None and view.verification.complete
    assert view.verification.found == 2 and view.verification.waited_seconds >= 10
    assert fake.events == [
        "pacs.mpps.created",
        "pacs.mpps.updated",
        "pacs.mpps.completed",
        "pacs.mpps.verified",
    ]


async def test_instances_that_never_arrive_are_reported_missing_after_the_timeout() -> None:
    fake = FakeMppsActivities(arrivals=[{"a"}])
    _, view = await drive(fake, [COMPLETED])
    assert view.verification is not None
    assert not view.verification.complete
    assert view.verification.missing == ["b"]
    assert view.verification.waited_seconds >= 300


async def test_a_discontinued_step_is_linked_and_not_verified() -> None:
    fake = FakeMppsActivities(arrivals=[set()])
    statuses, view = await drive(
        fake, [MppsAttributes(status="DISCONTINUED"), MppsAttributes(status="COMPLETED")]
    )
    assert statuses == [SUCCESS, PROCESSING_FAILURE]
    assert view.verification is None and fake.checks == 0
    assert fake.events == ["pacs.mpps.created", "pacs.mpps.discontinued"]
