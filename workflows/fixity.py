"""FixityWorkflow: a scrub of the archive (or one study). Tier by tier (hot, warm, cold), page
by page in key order, every archived object and kept version is re-read and its SHA-256
compared with the one recorded when it was archived (activities/fixity.py); each object that
differs, cannot be read, or has no recorded SHA-256 is a `pacs.instance.damaged` event as
soon as its page is done, and the run ends with `pacs.fixity.checked`. Objects are never
changed here: a damaged one is reported: after a move an instance has one copy, in one tier,
so there is none to repair from.

Started by the `fixity` Temporal Schedule (every `PACS_LIFECYCLE__FIXITY_INTERVAL_SECONDS`)
or on demand (`POST /api/storage/fixity`); ids `fixity:<study or all>:…`. Long runs continue
as new, carrying their counts.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from activities.fixity import FixityActivities
    from schemas.events import Event, FixityChecked, InstanceDamaged
    from schemas.lifecycle import FixityInput, FixityResult
    from schemas.tiers import TIER_NAMES
    from schemas.workflows import JobProgress, PublishEvents

SCHEDULE_ID = "fixity"
# Storage down: keep trying, backing off to 5 minutes (the run is not urgent).
STEP_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))
# The problems a run keeps in its result and carries over (all are events).
KEPT_PROBLEMS = 1000


def fixity_workflow_id(study_instance_uid: str, suffix: str) -> str:
    return f"fixity:{study_instance_uid or 'all'}:{suffix}"


@workflow.defn
class FixityWorkflow:
    def __init__(self) -> None:
        self._checked = 0
        self._stage = "reading"

    @workflow.query
    def progress(self) -> JobProgress:
        return JobProgress(done=self._checked, total=None, stage=self._stage)

    async def _publish(self, events: list[Event]) -> None:
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=events),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=STEP_RETRY,
        )

    @workflow.run
    async def run(self, start: FixityInput) -> FixityResult:
        run_id = workflow.info().workflow_id
        self._checked = start.checked
        while True:
            page = await workflow.execute_activity_method(
                FixityActivities.check_fixity,
                args=[start.study_instance_uid, start.start_after, start.page_size, start.tier],
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(seconds=90),
                retry_policy=STEP_RETRY,
            )
            start.checked += page.checked
            start.bytes_read += page.bytes_read
            self._checked = start.checked
            if page.problems:
                damaged: list[Event] = [
                    InstanceDamaged(
                        event_id=workflow.uuid4(),
                        occurred_at=workflow.now(),
                        problem=p,
                        workflow_id=run_id,
                    )
                    for p in page.problems
                ]
                await self._publish(damaged)
                start.damaged += len(page.problems)
                start.problems = (start.problems + page.problems)[:KEPT_PROBLEMS]
            if not page.last_key:
                later = TIER_NAMES[TIER_NAMES.index(start.tier) + 1 :]
                if not later:
                    break
                start.tier, start.start_after = later[0], ""
                continue
            start.start_after = page.last_key
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(start)
        checked = FixityChecked(
            event_id=workflow.uuid4(),
            occurred_at=workflow.now(),
            workflow_id=run_id,
            study_instance_uid=start.study_instance_uid,
            checked=start.checked,
            bytes_read=start.bytes_read,
            damaged=start.damaged,
        )
        await self._publish([checked])
        self._stage = "done"
        return FixityResult(
            study_instance_uid=start.study_instance_uid,
            checked=start.checked,
            bytes_read=start.bytes_read,
            damaged=start.damaged,
            problems=start.problems,
        )
