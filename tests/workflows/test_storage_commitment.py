"""StorageCommitmentWorkflow on the time-skipping test server, with stand-in activities."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from infra.dicom.statuses import FAILURE_NO_SUCH_OBJECT_INSTANCE, FAILURE_PROCESSING
from schemas.commitment import (
    ClaimRequest,
    CommitmentCheck,
    CommitmentCheckResult,
    CommitmentRef,
    CommitmentResult,
    DeliveryOutcome,
    RefOutcome,
    ReportDelivery,
    RequesterGone,
    StorageCommitmentInput,
)
from schemas.workflows import PublishEvents
from tests.workflows.time_skipping import start_env
from workflows.storage_commitment import StorageCommitmentWorkflow

HISTORIES = Path(__file__).parent.parent / "histories"
CT = "1.2.840.10008.5.1.4.1.1.2"


def ref(uid: str) -> CommitmentRef:
    return CommitmentRef(sop_class_uid=CT, sop_instance_uid=uid)


class FakeCommitment:
    def __init__(self, archived_after: dict[str, int]) -> None:
        # Instance -> at which check (0-based) it is archived; absent = never received.
        self.archived_after = archived_after
        self.checks = 0
        self.asked: list[list[str]] = []
        self.unconfirmed: set[str] = set()
        self.events: list[str] = []
        self.sent: list[ReportDelivery] = []

    @activity.defn(name="publish_events")
    async def publish_events(self, request: PublishEvents) -> None:
        self.events.extend(e.type for e in request.events)

    @activity.defn(name="check_commitment")
    async def check_commitment(self, request: CommitmentCheck) -> CommitmentCheckResult:
        outcomes = []
        self.asked.append([r.sop_instance_uid for r in request.references])
        for r in request.references:
            due = self.archived_after.get(r.sop_instance_uid)
            if r.sop_instance_uid in self.unconfirmed:
                outcomes.append(RefOutcome(ref=r, state="unconfirmed"))
            elif due is None:
                outcomes.append(RefOutcome(ref=r, state="missing"))
            elif self.checks >= due:
                outcomes.append(RefOutcome(ref=r, state="committed"))
            else:
                outcomes.append(RefOutcome(ref=r, state="not-archived"))
        self.checks += 1
        return CommitmentCheckResult(outcomes=outcomes)

    @activity.defn(name="send_event_report")
    async def send_event_report(self, delivery: ReportDelivery) -> None:
        self.sent.append(delivery)


async def commit(
    fake: FakeCommitment,
    refs: list[CommitmentRef],
    gateway: str,
    save_as: str | None = None,
) -> CommitmentResult:
    """`gateway`: "claims" (holds the association), "gone" (it ended), "silent" (died)."""
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[StorageCommitmentWorkflow],
            activities=[fake.publish_events, fake.check_commitment, fake.send_event_report],
        ):
            start = StorageCommitmentInput(
                transaction_uid="1.2.9",
                calling_ae="CT1",
                references=refs,
                wait_timeout_seconds=120,
                poll_seconds=5,
            )
            handle: WorkflowHandle[
                StorageCommitmentWorkflow, CommitmentResult
            ] = await env.client.start_workflow(
                StorageCommitmentWorkflow.run, start, id=f"commit:{queue}", task_queue=queue
            )
            if gateway == "claims":
                claiming = asyncio.create_task(
                    handle.execute_update(StorageCommitmentWorkflow.claim_report, ClaimRequest())
                )
                # The claim waits for the report; skip time forward until it is granted.
                while not claiming.done():
                    await env.sleep(1)
                claim = await claiming
                assert claim.granted and claim.report is not None
                await handle.signal(
                    StorageCommitmentWorkflow.report_delivered, DeliveryOutcome(delivered=True)
                )
            elif gateway == "gone":
                await handle.signal(StorageCommitmentWorkflow.requester_gone, RequesterGone())
            result = await handle.result()
            if save_as:
                (HISTORIES / save_as).write_text((await handle.fetch_history()).to_json())
            return result


async def test_report_goes_on_the_held_association_with_waits_and_failures() -> None:
    fake = FakeCommitment(archived_after={"a": 0, "b": 2})
    result = await commit(fake, [ref("a"), ref("b"), ref("never")], gateway="claims")
    assert result.delivered_via == "same-association"
    assert [r.sop_instance_uid for r in result.report.success] == ["a", "b"]
    assert [(f.ref.sop_instance_uid, f.failure_reason) for f in result.report.failed] == [
        ("never", FAILURE_NO_SUCH_OBJECT_INSTANCE)
    ]
    assert result.report.event_type_id == 2
    assert fake.sent == []
    assert fake.events == ["pacs.commitment.requested", "pacs.commitment.reported"]
    # The never-received instance is failed on the first check, not waited for.
    assert fake.asked == [["a", "b", "never"], ["b"], ["b"]]


async def test_an_instance_never_received_is_failed_without_waiting() -> None:
    fake = FakeCommitment(archived_after={"a": 0})
    result = await commit(fake, [ref("a"), ref("never")], gateway="gone")
    assert fake.checks == 1
    assert [(f.ref.sop_instance_uid, f.failure_reason) for f in result.report.failed] == [
        ("never", FAILURE_NO_SUCH_OBJECT_INSTANCE)
    ]


async def test_an_absence_the_catalog_cannot_confirm_yet_is_checked_again() -> None:
    fake = FakeCommitment(archived_after={})
    fake.unconfirmed.add("late")
    result = await commit(fake, [ref("late")], gateway="gone")
    assert fake.checks > 1
    assert [(f.failure_reason, f.detail) for f in result.report.failed] == [
        (FAILURE_NO_SUCH_OBJECT_INSTANCE, "unconfirmed")
    ]


async def test_report_goes_on_a_new_association_when_the_requester_left() -> None:
    fake = FakeCommitment(archived_after={"a": 0})
    result = await commit(fake, [ref("a")], gateway="gone")
    assert result.delivered_via == "new-association"
    assert [d.report.event_type_id for d in fake.sent] == [1]


async def test_a_silent_gateway_falls_back_after_the_claim_window() -> None:
    fake = FakeCommitment(archived_after={"a": 1000})
    result = await commit(fake, [ref("a")], gateway="silent")
    assert result.delivered_via == "new-association"
    assert [(f.failure_reason, f.detail) for f in result.report.failed] == [
        (FAILURE_PROCESSING, "not-archived")
    ]


async def test_a_late_claim_is_refused_once_the_new_association_path_started() -> None:
    fake = FakeCommitment(archived_after={"a": 0})
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[StorageCommitmentWorkflow],
            activities=[fake.publish_events, fake.check_commitment, fake.send_event_report],
        ):
            handle = await env.client.start_workflow(
                StorageCommitmentWorkflow.run,
                StorageCommitmentInput(
                    transaction_uid="1.2.9", calling_ae="CT1", references=[ref("a")]
                ),
                id=f"commit:{queue}",
                task_queue=queue,
            )
            await handle.signal(StorageCommitmentWorkflow.requester_gone, RequesterGone())
            await asyncio.sleep(0)
            claim = await handle.execute_update(
                StorageCommitmentWorkflow.claim_report, ClaimRequest()
            )
            assert not claim.granted
            assert (await handle.result()).delivered_via == "new-association"
