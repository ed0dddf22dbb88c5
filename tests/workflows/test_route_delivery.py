"""RouteDeliveryWorkflow on the time-skipping test server, with stand-in activities: order
kept through failures, backoff, dead letters after the maximum age, replay, repeats dropped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from schemas.events import InstanceRef
from schemas.routing import (
    BatchOutcome,
    DeliverBatch,
    Refused,
    RouteDeliveryInput,
    RouteItem,
    RouteItems,
    ScheduleWindow,
    StudiesStable,
)
from schemas.workflows import PublishEvents
from tests.workflows.time_skipping import start_env
from workflows.route_delivery import RouteDeliveryWorkflow

T0 = datetime(2026, 12, 2, tzinfo=UTC)


def items(
    count: int, max_age: float = 3600.0, start: int = 0, study: str = "1.2"
) -> list[RouteItem]:
    return [
        RouteItem(
            instance=InstanceRef(
                study_instance_uid=study, series_instance_uid="1.2.3",
                sop_instance_uid=f"1.2.3.{n}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                sha256=f"{n:064x}", size=1,
            ),
            landing_mode="spool", landing_key=f"k/{n}", rule="r", rule_version=1,
            received_at=T0, max_age_seconds=max_age,
        )
        for n in range(start, start + count)
    ]  # fmt: skip


class FakeDestination:
    def __init__(self, failures: int) -> None:
        self.failures = failures  # calls that fail before the destination "comes back"
        self.calls = 0
        self.delivered: list[str] = []
        self.events: list[str] = []
        self.refuse: set[str] = set()

    @activity.defn(name="deliver_batch")
    async def deliver_batch(self, batch: DeliverBatch) -> BatchOutcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise ApplicationError("association refused: destination down")
        outcome = BatchOutcome(stored=0)
        for item in batch.items:
            if item.instance.sop_instance_uid in self.refuse:
                outcome.refused.append(
                    Refused(sop_instance_uid=item.instance.sop_instance_uid,
                            sha256=item.instance.sha256, reason="burned-in annotation")
                )  # fmt: skip
            else:
                self.delivered.append(item.instance.sop_instance_uid)
        outcome.stored = len(batch.items) - len(outcome.refused)
        return outcome

    @activity.defn(name="publish_events")
    async def publish_events(self, request: PublishEvents) -> None:
        self.events.extend(e.type for e in request.events)


async def start(
    env: WorkflowEnvironment, queue: str, first: list[RouteItem]
) -> WorkflowHandle[RouteDeliveryWorkflow, None]:
    return await env.client.start_workflow(
        RouteDeliveryWorkflow.run,
        RouteDeliveryInput(destination="peer", via="dimse"),
        id=f"route:peer:{queue}",
        task_queue=queue,
        start_signal="enqueue",
        start_signal_args=[RouteItems(items=first)],
    )


async def test_order_survives_an_outage_and_repeats_are_dropped() -> None:
    fake = FakeDestination(failures=4)
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client, task_queue=queue, workflows=[RouteDeliveryWorkflow],
            activities=[fake.deliver_batch, fake.publish_events],
        ):  # fmt: skip
            now = await env.get_current_time()
            first = [i.model_copy(update={"received_at": now}) for i in items(120)]
            handle = await start(env, queue, first)
            # The same ten again (a redelivered log record) while they wait: queued once.
            await handle.signal(RouteDeliveryWorkflow.enqueue, RouteItems(items=first[:10]))
            await env.sleep(120)  # backoff 1 + 2 + 4 + 8 s, skipped
            state = await handle.query(RouteDeliveryWorkflow.state)
            assert state.delivered_total == 120 and state.queued == 0
            # Repeats of delivered items (a redelivered log record) are not sent again.
            await handle.signal(RouteDeliveryWorkflow.enqueue, RouteItems(items=first[:5]))
            await env.sleep(5)
            state = await handle.query(RouteDeliveryWorkflow.state)
            await handle.terminate()
    assert fake.delivered == [f"1.2.3.{n}" for n in range(120)]
    assert state.delivered_total == 120 and state.last_error == ""
    assert fake.events.count("pacs.route.delivered") == 3  # one per batch of up to 50


async def test_too_old_becomes_dead_letters_and_replay_delivers() -> None:
    fake = FakeDestination(failures=1_000_000)
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client, task_queue=queue, workflows=[RouteDeliveryWorkflow],
            activities=[fake.deliver_batch, fake.publish_events],
        ):  # fmt: skip
            now = await env.get_current_time()
            fresh = [i.model_copy(update={"received_at": now}) for i in items(7, max_age=30)]
            handle = await start(env, queue, fresh)
            await env.sleep(10)
            state = await handle.query(RouteDeliveryWorkflow.state)
            assert state.queued == 7 and "destination down" in state.last_error
            assert state.failing_since is not None and state.next_attempt_at is not None
            await env.sleep(timedelta(minutes=3))
            state = await handle.query(RouteDeliveryWorkflow.state)
            assert state.queued == 0 and len(state.dead_letters) == 7
            # Redelivered while dead: stays a dead letter, not queued again.
            await handle.signal(RouteDeliveryWorkflow.enqueue, RouteItems(items=fresh[:3]))
            await env.sleep(1)
            assert (await handle.query(RouteDeliveryWorkflow.state)).queued == 0
            assert "destination down" in state.dead_letters[0].reason
            assert "pacs.route.failed" in fake.events

            fake.failures = 0  # it came back
            await handle.signal(RouteDeliveryWorkflow.replay)
            await env.sleep(70)  # at most one backoff (60 s) to the next attempt
            state = await handle.query(RouteDeliveryWorkflow.state)
            await handle.terminate()
    assert state.dead_letters == [] and state.delivered_total == 7
    assert fake.delivered == [f"1.2.3.{n}" for n in range(7)]


async def test_held_items_wait_for_their_study_then_go_in_order() -> None:
    fake = FakeDestination(failures=0)
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client, task_queue=queue, workflows=[RouteDeliveryWorkflow],
            activities=[fake.deliver_batch, fake.publish_events],
        ):  # fmt: skip
            now = await env.get_current_time()
            study_a = [i.model_copy(update={"received_at": now}) for i in items(4)]
            study_b = [
                i.model_copy(update={"received_at": now}) for i in items(3, start=10, study="9.9")
            ]
            handle = await env.client.start_workflow(
                RouteDeliveryWorkflow.run,
                RouteDeliveryInput(destination="peer", via="dimse"),
                id=f"route:peer:{queue}",
                task_queue=queue,
                start_signal="enqueue",
                start_signal_args=[RouteItems(items=study_a + study_b, held=True)],
            )
            await env.sleep(5)
            state = await handle.query(RouteDeliveryWorkflow.state)
            assert (state.held, state.queued, fake.delivered) == (7, 0, [])
            await handle.signal(
                RouteDeliveryWorkflow.release, StudiesStable(study_instance_uids=["9.9"])
            )
            await env.sleep(5)
            assert fake.delivered == ["1.2.3.10", "1.2.3.11", "1.2.3.12"]
            state = await handle.query(RouteDeliveryWorkflow.state)
            assert state.held == 4
            await handle.terminate()


async def test_new_items_do_not_cut_a_backoff_short() -> None:
    fake = FakeDestination(failures=1_000_000)
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client, task_queue=queue, workflows=[RouteDeliveryWorkflow],
            activities=[fake.deliver_batch, fake.publish_events],
        ):  # fmt: skip
            now = await env.get_current_time()
            fresh = [i.model_copy(update={"received_at": now}) for i in items(25)]
            handle = await start(env, queue, fresh[:1])
            for item in fresh[1:]:  # ingest goes on: one more item a second, for 24 s
                await env.sleep(1)
                await handle.signal(RouteDeliveryWorkflow.enqueue, RouteItems(items=[item]))
            await env.sleep(1)
            state = await handle.query(RouteDeliveryWorkflow.state)
            await handle.terminate()
    assert state.queued == 25
    # Attempts at about 0, 1, 3, 7 and 15 s (backoff doubling), not one per new item.
    assert 4 <= fake.calls <= 6, fake.calls


async def test_windowed_items_wait_for_their_window_and_others_go_past() -> None:
    fake = FakeDestination(failures=0)
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client, task_queue=queue, workflows=[RouteDeliveryWorkflow],
            activities=[fake.deliver_batch, fake.publish_events],
        ):  # fmt: skip
            now = await env.get_current_time()
            # A window opening in two hours (in Tokyo time: the zone is the rule's), 1 h long.
            tokyo = now.astimezone(ZoneInfo("Asia/Tokyo"))
            window = ScheduleWindow(
                start=(tokyo + timedelta(hours=2)).time().replace(second=0, microsecond=0),
                end=(tokyo + timedelta(hours=3)).time().replace(second=0, microsecond=0),
                timezone="Asia/Tokyo",
            )
            opening = window.next_opening(now)
            # A short maximum age: counted from the opening, so waiting does not kill them.
            night = [
                i.model_copy(update={"received_at": now, "window": window, "due_at": opening})
                for i in items(3, max_age=600)
            ]
            day = [i.model_copy(update={"received_at": now}) for i in items(2, start=10)]
            handle = await start(env, queue, night + day)
            await env.sleep(60)
            state = await handle.query(RouteDeliveryWorkflow.state)
            assert fake.delivered == ["1.2.3.10", "1.2.3.11"]  # past the closed window
            assert state.queued == 3 and state.next_attempt_at == opening
            await env.sleep(timedelta(hours=2))
            state = await handle.query(RouteDeliveryWorkflow.state)
            await handle.terminate()
    assert fake.delivered[2:] == ["1.2.3.0", "1.2.3.1", "1.2.3.2"]
    assert state.queued == 0 and state.dead_letters == [] and state.delivered_total == 5


async def test_an_instance_refused_by_de_identification_is_a_dead_letter_at_once() -> None:
    fake = FakeDestination(failures=0)
    fake.refuse = {"1.2.3.1"}
    async with await start_env() as env:
        queue = str(uuid.uuid4())
        async with Worker(
            env.client, task_queue=queue, workflows=[RouteDeliveryWorkflow],
            activities=[fake.deliver_batch, fake.publish_events],
        ):  # fmt: skip
            now = await env.get_current_time()
            handle = await start(
                env, queue, [i.model_copy(update={"received_at": now}) for i in items(3)]
            )
            await env.sleep(5)
            state = await handle.query(RouteDeliveryWorkflow.state)
            await handle.terminate()
    assert fake.delivered == ["1.2.3.0", "1.2.3.2"] and fake.calls == 1  # not retried
    assert [d.item.instance.sop_instance_uid for d in state.dead_letters] == ["1.2.3.1"]
    assert state.dead_letters[0].reason == "burned-in annotation"
    assert state.delivered_total == 2 and "pacs.route.failed" in fake.events
