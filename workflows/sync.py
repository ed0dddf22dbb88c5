"""SyncWorkflow: one run of a sync relation. List the studies here and on the node with
their instance counts, plan (schemas/sync.py, `plan_sync`: more there -> pull, more here ->
push, as the relation's direction allows), then move each study in turn, each move retried
with backoff; a study that still cannot be moved is reported and the others go on. The end
is a `pacs.sync.completed` event, which is the relation's history.

One run per relation at a time (`sync:<relation>`): a run asked for while one goes on finds
the running one.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities
    from activities.prefetch import PrefetchActivities
    from activities.sync import SyncActivities
    from schemas.events import SyncCompleted
    from schemas.prefetch import PullStudy, RemoteStudy
    from schemas.sync import ListStudies, PushStudy, SyncInput, SyncResult, plan_sync
    from schemas.workflows import JobProgress, PublishEvents
    from workflows.prefetch import FIND_RETRY, PULL_RETRY

# As a prefetch's: listing like finding priors, moving a study like pulling one.
LIST_RETRY, MOVE_RETRY = FIND_RETRY, PULL_RETRY


def sync_workflow_id(relation: str) -> str:
    return f"sync:{relation}"


@workflow.defn
class SyncWorkflow:
    def __init__(self) -> None:
        self._result: SyncResult | None = None
        self._planned = 0
        self._stage = "listing"

    @workflow.query
    def progress(self) -> JobProgress:
        """Studies moved (or failed) of those planned."""
        r = self._result
        done = len(r.pulled) + len(r.pushed) + len(r.failed) if r else 0
        return JobProgress(done=done, total=self._planned or None, stage=self._stage)

    @workflow.run
    async def run(self, start: SyncInput) -> SyncResult:
        relation = start.relation
        result = self._result = SyncResult(relation=relation.name, node=relation.node)
        sides = [
            ListStudies(lookback_days=relation.lookback_days),
            ListStudies(
                node=relation.node, via=relation.pull_via, lookback_days=relation.lookback_days
            ),
        ]
        here, there = [
            await workflow.execute_activity_method(
                SyncActivities.list_studies,
                side,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=LIST_RETRY,
            )
            for side in sides
        ]
        plan = plan_sync(here, there, relation.direction)
        result.studies_here, result.studies_there, result.same = len(here), len(there), plan.same
        self._planned = len(plan.pull) + len(plan.push)
        self._stage = "moving"
        for study in plan.pull:
            uid = study.study_instance_uid
            remote = RemoteStudy(source=relation.node, study_instance_uid=uid)
            try:
                await workflow.execute_activity_method(
                    PrefetchActivities.pull_study,
                    PullStudy(study=remote, via=relation.pull_via, expected=study.instances),
                    start_to_close_timeout=timedelta(hours=2),
                    heartbeat_timeout=timedelta(seconds=90),
                    retry_policy=MOVE_RETRY,
                )
                result.pulled.append(uid)
            except ActivityError as exc:
                result.failed.append(f"{uid}: pull: {exc.cause or exc}")
        for study in plan.push:
            uid = study.study_instance_uid
            try:
                await workflow.execute_activity_method(
                    SyncActivities.push_study,
                    PushStudy(node=relation.node, via=relation.push_via, study_instance_uid=uid),
                    start_to_close_timeout=timedelta(hours=2),
                    heartbeat_timeout=timedelta(seconds=90),
                    retry_policy=MOVE_RETRY,
                )
                result.pushed.append(uid)
            except ActivityError as exc:
                result.failed.append(f"{uid}: push: {exc.cause or exc}")
        self._stage = "done"
        completed = SyncCompleted(
            event_id=workflow.uuid4(),
            occurred_at=workflow.now(),
            relation=relation.name,
            node=relation.node,
            workflow_id=workflow.info().workflow_id,
            studies_here=result.studies_here,
            studies_there=result.studies_there,
            same=result.same,
            pulled=result.pulled,
            pushed=result.pushed,
            failed=[f.split(":", 1)[0] for f in result.failed],
        )
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=[completed]),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        return result
