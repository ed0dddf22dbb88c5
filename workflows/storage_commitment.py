"""StorageCommitmentWorkflow: verify what a peer asks us to commit to, then tell it.

One workflow per transaction (`storage-commitment:<TransactionUID>`), started by the
gateway's N-ACTION. It checks each referenced instance is in the archive with the checksum
it was received with, waiting (up to a timeout) for instances still being archived.

Delivering the N-EVENT-REPORT: the requester may still hold the association it asked on,
and only the gateway process that accepted it can write to it. That gateway waits for the
report through the `claim_report` update while the association lives. The workflow grants
the claim to that gateway, which sends the report and signals the outcome; if the
association ended (`requester_gone`), no claim comes within the claim window (the gateway
died), or the send on that association fails, the workflow sends the report itself on a new
association to the requester's AE (remote-AE table), with retries. A claim is granted at
most once and never after the new-association path started, so the peer gets one report.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.commitment import CommitmentActivities
    from activities.events import EventActivities
    from infra.dicom.statuses import (
        FAILURE_CLASS_INSTANCE_CONFLICT,
        FAILURE_NO_SUCH_OBJECT_INSTANCE,
        FAILURE_PROCESSING,
    )
    from schemas.commitment import (
        ClaimRequest,
        ClaimResult,
        CommitmentCheck,
        CommitmentFailure,
        CommitmentReport,
        CommitmentResult,
        DeliveryOutcome,
        DeliveryPath,
        RefOutcome,
        ReportDelivery,
        RequesterGone,
        StorageCommitmentInput,
    )
    from schemas.events import CommitmentReported, CommitmentRequested, Event
    from schemas.workflows import PublishEvents

TRANSACTION_UID = SearchAttributeKey.for_keyword("TransactionUID")
CALLING_AE = SearchAttributeKey.for_keyword("CallingAE")

RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
# Histories recorded before "missing" became final waited for missing instances too.
MISSING_IS_FINAL = "commitment-missing-is-final"
# FailureReason for what is still not verified when the wait ends (PS3.3 C.14.1.1).
_FAILURE_REASONS = {
    "missing": FAILURE_NO_SUCH_OBJECT_INSTANCE,
    "unconfirmed": FAILURE_NO_SUCH_OBJECT_INSTANCE,
    "class-conflict": FAILURE_CLASS_INSTANCE_CONFLICT,
    "not-archived": FAILURE_PROCESSING,
    "checksum-mismatch": FAILURE_PROCESSING,
}


def workflow_id(transaction_uid: str) -> str:
    return f"storage-commitment:{transaction_uid}"


def search_attributes(start: StorageCommitmentInput) -> list[SearchAttributePair[str]]:
    return [
        SearchAttributePair(TRANSACTION_UID, start.transaction_uid),
        SearchAttributePair(CALLING_AE, start.calling_ae),
    ]


def build_report(transaction_uid: str, outcomes: list[RefOutcome]) -> CommitmentReport:
    report = CommitmentReport(transaction_uid=transaction_uid)
    for outcome in outcomes:
        if outcome.state == "committed":
            report.success.append(outcome.ref)
        else:
            reason = _FAILURE_REASONS[outcome.state]
            detail = f"{outcome.state}: {outcome.detail}" if outcome.detail else outcome.state
            report.failed.append(
                CommitmentFailure(ref=outcome.ref, failure_reason=reason, detail=detail)
            )
    return report


@workflow.defn
class StorageCommitmentWorkflow:
    def __init__(self) -> None:
        self._report: CommitmentReport | None = None
        self._claimed = False
        self._requester_gone = False
        self._fallback_started = False
        self._delivery: DeliveryOutcome | None = None

    @workflow.update
    async def claim_report(self, request: ClaimRequest) -> ClaimResult:
        """Waits for the report; granted once, to a gateway still holding the association."""
        await workflow.wait_condition(self._claim_decidable)
        if self._claimed or self._requester_gone or self._fallback_started:
            return ClaimResult(granted=False)
        self._claimed = True
        return ClaimResult(granted=True, report=self._report)

    def _claim_decidable(self) -> bool:
        return self._report is not None or self._requester_gone or self._fallback_started

    @workflow.signal
    def report_delivered(self, outcome: DeliveryOutcome) -> None:
        self._delivery = outcome

    @workflow.signal
    def requester_gone(self, notice: RequesterGone) -> None:
        self._requester_gone = True

    @workflow.query
    def report(self) -> CommitmentReport | None:
        return self._report

    async def _publish(self, event: Event) -> None:
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=[event]),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )

    @workflow.run
    async def run(self, start: StorageCommitmentInput) -> CommitmentResult:
        workflow.upsert_search_attributes(
            [pair.key.value_set(pair.value) for pair in search_attributes(start)]
        )
        await self._publish(
            CommitmentRequested(
                event_id=workflow.uuid4(),
                occurred_at=workflow.now(),
                transaction_uid=start.transaction_uid,
                calling_ae=start.calling_ae,
                references=start.references,
            )
        )
        self._report = build_report(start.transaction_uid, await self._verify(start))
        path, detail = await self._deliver(start, self._report)
        await self._publish(
            CommitmentReported(
                event_id=workflow.uuid4(),
                occurred_at=workflow.now(),
                transaction_uid=start.transaction_uid,
                calling_ae=start.calling_ae,
                success=self._report.success,
                failed=self._report.failed,
                delivered_via=path,
                detail=detail,
            )
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return CommitmentResult(report=self._report, delivered_via=path, detail=detail)

    async def _verify(self, start: StorageCommitmentInput) -> list[RefOutcome]:
        """Check until every instance is committed, or one cannot be, or time is up."""
        deadline = workflow.now() + timedelta(seconds=start.wait_timeout_seconds)
        settled: dict[str, RefOutcome] = {}
        pending = list(start.references)
        # Committed and class conflicts will not change by waiting, nor will an instance the
        # catalog, caught up with the log, has never seen and landing does not hold: the
        # modality is told at once. Anything else may still arrive or finish archiving.
        final = {"committed", "class-conflict"}
        if workflow.patched(MISSING_IS_FINAL):
            final.add("missing")
        while True:
            try:
                result = await workflow.execute_activity_method(
                    CommitmentActivities.check_commitment,
                    CommitmentCheck(references=pending, log_positions=start.log_positions),
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
                outcomes = result.outcomes
            except ActivityError as exc:
                # Catalog or archive unreachable: nothing is verified this round.
                workflow.logger.warning("commitment check failed: %s", exc.cause or exc)
                detail = "catalog or archive unavailable"
                outcomes = [RefOutcome(ref=r, state="not-archived", detail=detail) for r in pending]
            waiting = []
            for outcome in outcomes:
                if outcome.state in final:
                    settled[outcome.ref.sop_instance_uid] = outcome
                else:
                    waiting.append(outcome)
            remaining = (deadline - workflow.now()).total_seconds()
            if not waiting or remaining <= 0:
                for outcome in waiting:
                    settled[outcome.ref.sop_instance_uid] = outcome
                break
            pending = [o.ref for o in waiting]
            await workflow.sleep(min(start.poll_seconds, remaining))
        return [settled[r.sop_instance_uid] for r in start.references]

    async def _deliver(
        self, start: StorageCommitmentInput, report: CommitmentReport
    ) -> tuple[DeliveryPath, str]:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._claimed or self._requester_gone,
                timeout=timedelta(seconds=start.claim_window_seconds),
            )
        detail = ""
        if self._claimed:
            try:
                await workflow.wait_condition(
                    lambda: self._delivery is not None,
                    timeout=timedelta(seconds=start.delivery_timeout_seconds),
                )
            except TimeoutError:
                detail = "the gateway took the report but never confirmed sending it; "
            if self._delivery is not None and self._delivery.delivered:
                return "same-association", ""
            if self._delivery is not None:
                detail = f"same association: {self._delivery.detail}; "
        self._fallback_started = True
        try:
            await workflow.execute_activity_method(
                CommitmentActivities.send_event_report,
                ReportDelivery(report=report, calling_ae=start.calling_ae),
                start_to_close_timeout=timedelta(seconds=90),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=2),
                    maximum_interval=timedelta(seconds=60),
                    maximum_attempts=start.new_association_attempts,
                ),
            )
        except ActivityError as exc:
            cause = str(exc.cause or exc)
            workflow.logger.warning("commitment report undelivered: %s", cause)
            return "undelivered", detail + cause
        return "new-association", detail
