"""StudyIngestWorkflow: archives a study's landed instances and declares it stable.

One workflow per study (`study-ingest:<StudyInstanceUID>`); the dispatcher signal-with-starts
it with batches of landed instances. After a quiet period with nothing new it announces
`pacs.study.stabilized` and completes; a later instance starts a new run under the same id.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
)

with workflow.unsafe.imports_passed_through():
    from activities.storage import StorageActivities
    from schemas.workflows import (
        ArchiveBatch,
        InstancesReceived,
        JobProgress,
        LandedInstance,
        StudyContext,
        StudyIngestInput,
        StudyStableNotice,
    )

STUDY_UID = SearchAttributeKey.for_keyword("StudyInstanceUID")
PATIENT_ID = SearchAttributeKey.for_keyword("PatientID")
MODALITY = SearchAttributeKey.for_keyword("Modality")
CALLING_AE = SearchAttributeKey.for_keyword("CallingAE")

ARCHIVE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
# An archive batch may hold a few kilobytes or many gigabytes (multi-frame objects of
# hundreds of MB each), so its deadline grows with its bytes: an object store that moves less
# than ARCHIVE_MIN_BYTES_PER_SECOND (copy plus verification) is broken, not slow. A worker
# that dies mid-batch is caught by the heartbeat timeout instead of that long deadline.
ARCHIVE_BASE_TIMEOUT = timedelta(minutes=5)
ARCHIVE_MIN_BYTES_PER_SECOND = 10_000_000
ARCHIVE_HEARTBEAT_TIMEOUT = timedelta(seconds=60)


def archive_timeout(batch: list[LandedInstance]) -> timedelta:
    """start_to_close of one archive batch: a floor for small batches, plus time per byte."""
    size = sum(landed.instance.size for landed in batch)
    return ARCHIVE_BASE_TIMEOUT + timedelta(seconds=size / ARCHIVE_MIN_BYTES_PER_SECOND)


def search_attributes(context: StudyContext) -> list[SearchAttributePair[str]]:
    """The attributes ops find a study's workflow by in the Temporal UI."""
    values = [
        (STUDY_UID, context.study_instance_uid),
        (PATIENT_ID, context.patient_id),
        (MODALITY, context.modality),
        (CALLING_AE, context.calling_ae),
    ]
    return [SearchAttributePair(key, value) for key, value in values if value]


def _updates(context: StudyContext) -> list[SearchAttributeUpdate[str]]:
    return [pair.key.value_set(pair.value) for pair in search_attributes(context)]


@workflow.defn
class StudyIngestWorkflow:
    def __init__(self) -> None:
        self._pending: list[LandedInstance] = []
        self._archived: dict[str, str] = {}
        self._series: set[str] = set()
        self._context: StudyContext | None = None
        self._signals = 0

    @workflow.query
    def progress(self) -> JobProgress:
        """Archived of what has arrived so far (a study may still grow)."""
        done = len(self._archived)
        stage = "archiving" if self._pending else "waiting for the study to be stable"
        return JobProgress(done=done, total=done + len(self._pending), stage=stage)

    @workflow.signal
    def instances_received(self, batch: InstancesReceived) -> None:
        """Delivery is at-least-once: what is archived or already queued is ignored."""
        self._signals += 1
        queued = {(p.instance.sop_instance_uid, p.instance.sha256) for p in self._pending}
        for landed in batch.instances:
            ref = landed.instance
            if self._archived.get(ref.sop_instance_uid) == ref.sha256:
                continue
            if (ref.sop_instance_uid, ref.sha256) in queued:
                continue
            queued.add((ref.sop_instance_uid, ref.sha256))
            self._pending.append(landed)
        self._learn(batch.context)

    def _learn(self, context: StudyContext) -> None:
        """Fill search attributes the first batch did not know (e.g. PatientID)."""
        known = self._context
        if known is None:
            self._context = context
            return
        merged = StudyContext(
            study_instance_uid=known.study_instance_uid,
            patient_id=known.patient_id or context.patient_id,
            modality=known.modality or context.modality,
            calling_ae=known.calling_ae or context.calling_ae,
        )
        if merged != known:
            self._context = merged
            workflow.upsert_search_attributes(_updates(merged))

    def _next_batch(self, size: int) -> list[LandedInstance]:
        """Up to `size` instances, never two versions of one SOP instance in the same batch,
        so an overwrite is applied after the version it replaces."""
        batch: list[LandedInstance] = []
        seen: set[str] = set()
        for landed in self._pending:
            if len(batch) >= size:
                break
            if landed.instance.sop_instance_uid in seen:
                break
            seen.add(landed.instance.sop_instance_uid)
            batch.append(landed)
        del self._pending[: len(batch)]
        return batch

    @workflow.run
    async def run(self, start: StudyIngestInput) -> StudyStableNotice:
        self._learn(start.context)
        self._pending = list(start.pending) + self._pending
        self._archived.update(start.archived)
        self._series.update(start.series)
        workflow.upsert_search_attributes(_updates(self._context or start.context))
        quiet = timedelta(seconds=start.stable_after_seconds)
        while True:
            await self._settle(start)
            while self._pending:
                batch = self._next_batch(start.batch_size)
                result = await workflow.execute_activity_method(
                    StorageActivities.archive_instances,
                    ArchiveBatch(instances=batch),
                    start_to_close_timeout=archive_timeout(batch),
                    heartbeat_timeout=ARCHIVE_HEARTBEAT_TIMEOUT,
                    retry_policy=ARCHIVE_RETRY,
                )
                for done in result.archived:
                    self._archived[done.sop_instance_uid] = done.sha256
                    self._series.add(done.series_instance_uid)
                if workflow.info().is_continue_as_new_suggested():
                    workflow.continue_as_new(self._carry_over(start))
            try:
                await workflow.wait_condition(lambda: bool(self._pending), timeout=quiet)
            except TimeoutError:
                break
        context = self._context or start.context
        notice = StudyStableNotice(
            study_instance_uid=context.study_instance_uid,
            patient_id=context.patient_id,
            series_count=len(self._series),
            instance_count=len(self._archived),
            quiet_seconds=start.stable_after_seconds,
            event_id=str(workflow.uuid4()),
        )
        await workflow.execute_activity_method(
            StorageActivities.announce_study_stable,
            notice,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=ARCHIVE_RETRY,
        )
        # Instances that arrived while announcing are archived by a new run of this study.
        if self._pending:
            workflow.continue_as_new(self._carry_over(start))
        return notice

    async def _settle(self, start: StudyIngestInput) -> None:
        """Wait while instances keep arriving, unless the backlog is already large."""
        settle = timedelta(seconds=start.archive_settle_seconds)
        while len(self._pending) < start.archive_backlog:
            seen = self._signals
            try:
                await workflow.wait_condition(partial(self._signalled_since, seen), timeout=settle)
            except TimeoutError:
                return

    def _signalled_since(self, seen: int) -> bool:
        return self._signals != seen

    def _carry_over(self, start: StudyIngestInput) -> StudyIngestInput:
        return StudyIngestInput(
            context=self._context or start.context,
            stable_after_seconds=start.stable_after_seconds,
            batch_size=start.batch_size,
            archive_settle_seconds=start.archive_settle_seconds,
            archive_backlog=start.archive_backlog,
            pending=self._pending,
            archived=self._archived,
            series=sorted(self._series),
        )
