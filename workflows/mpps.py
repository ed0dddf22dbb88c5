"""MppsWorkflow: the state of one Modality Performed Procedure Step, strongly consistent.

One workflow per MPPS instance (`mpps:<SOPInstanceUID>`), started by the gateway's N-CREATE.
Each N-SET is a Temporal update answered with the DIMSE status, so an N-SET right after the
N-CREATE sees it and two N-SETs are applied one after the other. Once the step is COMPLETED
or DISCONTINUED no N-SET changes it (PS3.4 F.7.2.2, status 0x0110); a completed step is
linked to its worklist item and the instances it lists are checked against the catalog.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from activities.mpps import MppsActivities
    from infra.dicom.statuses import PROCESSING_FAILURE, SUCCESS
    from schemas.events import (
        Event,
        MppsCompleted,
        MppsCreated,
        MppsDiscontinued,
        MppsUpdated,
        MppsVerified,
    )
    from schemas.mpps import (
        InstanceCheck,
        InstanceVerification,
        MppsAttributes,
        MppsSet,
        MppsSetResult,
        MppsStart,
        MppsState,
        MppsView,
        WorklistLinkRequest,
    )
    from schemas.workflows import PublishEvents

STUDY_UID = SearchAttributeKey.for_keyword("StudyInstanceUID")
PATIENT_ID = SearchAttributeKey.for_keyword("PatientID")
MODALITY = SearchAttributeKey.for_keyword("Modality")
CALLING_AE = SearchAttributeKey.for_keyword("CallingAE")

RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


def workflow_id(sop_instance_uid: str) -> str:
    return f"mpps:{sop_instance_uid}"


def search_attributes(state: MppsState) -> list[SearchAttributePair[str]]:
    """What ops find an MPPS's workflow by in the Temporal UI."""
    values = [
        (STUDY_UID, state.study_instance_uid),
        (PATIENT_ID, state.patient_id),
        (MODALITY, state.modality),
        (CALLING_AE, state.calling_ae),
    ]
    return [SearchAttributePair(key, value) for key, value in values if value]


def merged(state: MppsState, attributes: MppsAttributes) -> MppsState:
    """The state after an N-SET: attributes in the modification list replace ours."""
    changes = {k: v for k, v in attributes.model_dump(exclude_none=True).items()}
    return MppsState.model_validate({**state.model_dump(), **changes})


@workflow.defn
class MppsWorkflow:
    def __init__(self) -> None:
        self._state: MppsState | None = None
        self._outbox: list[Event] = []
        self._worklist_item_id: str | None = None
        self._verification: InstanceVerification | None = None

    @workflow.update
    def n_set(self, request: MppsSet) -> MppsSetResult:
        """Apply one N-SET, or refuse it once the step is final."""
        state = self._state
        assert state is not None  # run() sets it before any update is delivered
        if state.status != "IN PROGRESS":
            return MppsSetResult(
                status=PROCESSING_FAILURE,
                reason=f"Performed Procedure Step is {state.status}; it may not be updated",
            )
        self._state = merged(state, request.attributes)
        if self._state.status == "IN PROGRESS":
            self._outbox.append(self._event(MppsUpdated))
        return MppsSetResult(status=SUCCESS)

    @workflow.query
    def view(self) -> MppsView:
        assert self._state is not None
        return MppsView(
            state=self._state,
            worklist_item_id=self._worklist_item_id,
            verification=self._verification,
        )

    def _event(self, kind: type[MppsCreated] | type[MppsUpdated]) -> Event:
        state = self._state
        assert state is not None
        return kind(
            event_id=workflow.uuid4(),
            occurred_at=workflow.now(),
            mpps=state,
            study_instance_uid=state.study_instance_uid,
            patient_id=state.patient_id,
        )

    async def _publish(self, events: list[Event]) -> None:
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=events),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )

    async def _flush(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            await self._publish(batch)

    @workflow.run
    async def run(self, start: MppsStart) -> MppsView:
        self._state = start.state
        workflow.upsert_search_attributes(
            [pair.key.value_set(pair.value) for pair in search_attributes(start.state)]
        )
        self._outbox.append(self._event(MppsCreated))
        while True:
            await self._flush()
            if self._state.status != "IN PROGRESS":
                break
            await workflow.wait_condition(self._has_news)
        final = self._state
        link = await workflow.execute_activity_method(
            MppsActivities.find_worklist_item,
            WorklistLinkRequest(scheduled_steps=final.scheduled_steps),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        self._worklist_item_id = link.item_id
        common = {
            "occurred_at": workflow.now(),
            "mpps": final,
            "study_instance_uid": final.study_instance_uid,
            "patient_id": final.patient_id,
            "worklist_item_id": link.item_id,
        }
        if final.status == "COMPLETED":
            await self._publish([MppsCompleted(event_id=workflow.uuid4(), **common)])
            self._verification = await self._verify(start)
            await self._publish(
                [
                    MppsVerified(
                        event_id=workflow.uuid4(),
                        occurred_at=workflow.now(),
                        sop_instance_uid=final.sop_instance_uid,
                        study_instance_uid=final.study_instance_uid,
                        patient_id=final.patient_id,
                        worklist_item_id=link.item_id,
                        verification=self._verification,
                    )
                ]
            )
        else:
            await self._publish([MppsDiscontinued(event_id=workflow.uuid4(), **common)])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    def _has_news(self) -> bool:
        return bool(self._outbox) or (
            self._state is not None and self._state.status != "IN PROGRESS"
        )

    async def _verify(self, start: MppsStart) -> InstanceVerification:
        """Ask the catalog until every listed instance is there or the timeout passes."""
        assert self._state is not None
        expected = sorted(set(self._state.sop_instance_uids))
        began = workflow.now()
        deadline = began + timedelta(seconds=start.verify_timeout_seconds)
        found: set[str] = set()
        while True:
            missing = [uid for uid in expected if uid not in found]
            if missing:
                try:
                    result = await workflow.execute_activity_method(
                        MppsActivities.check_instances,
                        InstanceCheck(sop_instance_uids=missing),
                        start_to_close_timeout=timedelta(seconds=30),
                        retry_policy=RetryPolicy(maximum_attempts=3),
                    )
                    found.update(result.found)
                except ActivityError:
                    workflow.logger.warning("instance check failed; trying again")
            remaining = (deadline - workflow.now()).total_seconds()
            if len(found) == len(expected) or remaining <= 0:
                break
            await workflow.sleep(min(start.verify_poll_seconds, remaining))
        missing = [uid for uid in expected if uid not in found]
        return InstanceVerification(
            expected=len(expected),
            found=len(found),
            missing=missing,
            complete=not missing,
            waited_seconds=(workflow.now() - began).total_seconds(),
        )
