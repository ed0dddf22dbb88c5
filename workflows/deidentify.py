"""DeidentificationWorkflow: a de-identified copy of one study, delivered where asked.

One workflow per job (`deidentify:<job id>`), visible in Temporal with the source study's
UID as a search attribute: first the copy is made and staged (with its re-identification
map, which stays in the object store), then it is delivered — as a new study through our
own ingest path, to a registered node, or as a zip — and `pacs.study.deidentified` is
announced. The result names the copy's study UID.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)

with workflow.unsafe.imports_passed_through():
    from activities.deidentify import DeidentificationActivities
    from activities.events import EventActivities
    from schemas.deidentify import (
        DeidentificationInput,
        DeidentificationResult,
        DeliverInput,
    )
    from schemas.events import StudyDeidentified
    from schemas.workflows import JobProgress, PublishEvents

STUDY_UID = SearchAttributeKey.for_keyword("StudyInstanceUID")
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)
# A study of a few thousand instances is read, transformed and written in minutes; the
# heartbeat tells a dead worker from a long study.
STEP_TIMEOUT = timedelta(hours=2)
HEARTBEAT_TIMEOUT = timedelta(seconds=60)


def deidentification_workflow_id(job_id: str) -> str:
    return f"deidentify:{job_id}"


def search_attributes(job: DeidentificationInput) -> TypedSearchAttributes:
    """Ops find a study's de-identification jobs by the source study's UID."""
    return TypedSearchAttributes([SearchAttributePair(STUDY_UID, job.study_instance_uid)])


@workflow.defn
class DeidentificationWorkflow:
    def __init__(self) -> None:
        self._stage = "starting"

    @workflow.query
    def stage(self) -> str:
        """starting, de-identifying, delivering or done."""
        return self._stage

    @workflow.query
    def progress(self) -> JobProgress:
        """Steps done of the three (copy, deliver, announce)."""
        steps = ["starting", "de-identifying", "delivering", "done"]
        return JobProgress(done=max(steps.index(self._stage) - 1, 0), total=3, stage=self._stage)

    @workflow.run
    async def run(self, job: DeidentificationInput) -> DeidentificationResult:
        self._stage = "de-identifying"
        staged = await workflow.execute_activity_method(
            DeidentificationActivities.deidentify_study,
            job,
            start_to_close_timeout=STEP_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RETRY,
        )
        self._stage = "delivering"
        deliver = DeliverInput(
            job_id=job.job_id, target=job.target, staging_prefix=staged.staging_prefix
        )
        delivered = await workflow.execute_activity_method(
            DeidentificationActivities.deliver_copy,
            deliver,
            start_to_close_timeout=STEP_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RETRY,
        )
        await workflow.execute_activity_method(
            DeidentificationActivities.drop_staged,
            deliver,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RETRY,
        )
        announced = StudyDeidentified(
            event_id=workflow.uuid4(),
            occurred_at=workflow.now(),
            study_instance_uid=job.study_instance_uid,
            job_id=job.job_id,
            options=job.options.names(),
            target=job.target,
            instance_count=delivered.delivered,
            actor=job.requested_by,
        )
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=[announced]),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RETRY,
        )
        self._stage = "done"
        return DeidentificationResult(
            job_id=job.job_id,
            source_study_instance_uid=job.study_instance_uid,
            study_instance_uid=staged.study_instance_uid,
            instance_count=staged.instance_count,
            series_count=staged.series_count,
            target=job.target,
            delivered=delivered.delivered,
            zip_available=delivered.zip_key is not None,
        )
