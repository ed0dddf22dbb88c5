"""PrefetchWorkflow: one patient's priors, brought here before they are needed.

Ask the sources (C-FIND, or QIDO-RS) for the patient's studies, count what is here, choose
(schemas/prefetch.py, `choose_priors`: wanted modality and body part, within the lookback,
newest first, at most `max_studies`, skipping any already complete here), then pull each
chosen study in turn (C-GET, C-MOVE or WADO-RS), each pull retried with backoff. A study
that still cannot be pulled is reported, not fatal: the others arrive anyway. The end is a
`pacs.prefetch.completed` event. Its id is one per patient and accession, so a repeated
request finds the running prefetch instead of starting another (schemas/prefetch.py).
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
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from activities.prefetch import PrefetchActivities
    from schemas.events import PrefetchCompleted
    from schemas.prefetch import (
        FindPriors,
        LocalCounts,
        PrefetchInput,
        PrefetchResult,
        PriorChoice,
        PullStudy,
        choose_priors,
    )
    from schemas.workflows import JobProgress, PublishEvents

PATIENT_ID = SearchAttributeKey.for_keyword("PatientID")
ACCESSION = SearchAttributeKey.for_keyword("AccessionNumber")
STUDY_UID = SearchAttributeKey.for_keyword("StudyInstanceUID")

FIND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=5,
)
PULL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=6,
    non_retryable_error_types=["UnknownNode"],
)


def search_attributes(job: PrefetchInput) -> TypedSearchAttributes:
    """Ops find a prefetch by PatientID and AccessionNumber (and the study it is for)."""
    pairs = [SearchAttributePair(PATIENT_ID, job.patient_id)]
    if job.accession_number:
        pairs.append(SearchAttributePair(ACCESSION, job.accession_number))
    if job.study_instance_uid:
        pairs.append(SearchAttributePair(STUDY_UID, job.study_instance_uid))
    return TypedSearchAttributes(pairs)


@workflow.defn
class PrefetchWorkflow:
    def __init__(self) -> None:
        self._result = PrefetchResult()
        self._stage = "finding priors"

    @workflow.query
    def progress(self) -> JobProgress:
        """Studies pulled (or found failing) of those chosen to pull."""
        wanted = [d for d in self._result.decisions if d.decision == "pull"]
        done = len(self._result.pulled) + len(self._result.failed)
        total = len(wanted) if self._result.decisions else None
        return JobProgress(done=done, total=total, stage=self._stage)

    @workflow.query
    def result(self) -> PrefetchResult:
        return self._result

    @workflow.run
    async def run(self, job: PrefetchInput) -> PrefetchResult:
        choice = PriorChoice.model_validate(job.model_dump(include=set(PriorChoice.model_fields)))
        found = await workflow.execute_activity_method(
            PrefetchActivities.find_priors,
            FindPriors(patient_id=job.patient_id, choice=choice),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=FIND_RETRY,
        )
        uids = sorted({s.study_instance_uid for s in found})
        local = await workflow.execute_activity_method(
            PrefetchActivities.local_counts,
            LocalCounts(study_instance_uids=uids),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=FIND_RETRY,
        )
        today = workflow.now().date()
        self._result.decisions = choose_priors(found, local, choice, today, job.study_instance_uid)
        self._stage = "pulling"
        for decision in self._result.decisions:
            if decision.decision != "pull":
                continue
            study = decision.study
            try:
                pulled = await workflow.execute_activity_method(
                    PrefetchActivities.pull_study,
                    PullStudy(study=study, via=job.via, expected=study.instances),
                    start_to_close_timeout=timedelta(hours=2),
                    heartbeat_timeout=timedelta(seconds=90),
                    retry_policy=PULL_RETRY,
                )
                self._result.pulled.append(pulled)
            except ActivityError as exc:
                cause = exc.cause if exc.cause is not None else exc
                self._result.failed.append(f"{study.study_instance_uid}: {cause}")
        self._result.late = job.deadline is not None and workflow.now() > job.deadline
        self._stage = "done"
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=[self._completed(job)]),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        return self._result

    def _completed(self, job: PrefetchInput) -> PrefetchCompleted:
        result = self._result
        return PrefetchCompleted(
            event_id=workflow.uuid4(),
            occurred_at=workflow.now(),
            patient_id=job.patient_id,
            accession_number=job.accession_number,
            workflow_id=workflow.info().workflow_id,
            rule=job.rule,
            pulled=[p.study_instance_uid for p in result.pulled],
            skipped=[
                d.study.study_instance_uid
                for d in result.decisions
                if d.decision == "complete here"
            ],
            failed=[f.split(":", 1)[0] for f in result.failed],
            late=result.late,
        )
