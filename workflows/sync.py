"""SyncWorkflow: one run of a sync relation. List the studies here and on the node, plan
(schemas/sync.py): a study only one side holds moves whole, as the relation's direction
allows; the studies both hold are compared in batches, series by series (instance counts)
or instance by instance (data set digests), and what differs moves series by series.
Conflicts (same SOP Instance UID, different content) are settled by the relation's policy.
Each move is retried with backoff; a study that still cannot be moved is reported and the
others go on. The end is a `pacs.sync.conflict` event per conflict and a
`pacs.sync.completed` event, which are the relation's history.

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
    from schemas.events import Event, SyncCompleted, SyncConflictFound
    from schemas.prefetch import PullStudy, RemoteStudy
    from schemas.sync import (
        CompareStudies,
        InstanceConflict,
        ListStudies,
        PushStudy,
        SettleConflicts,
        SettledConflict,
        Side,
        StudyDiff,
        SyncInput,
        SyncRelation,
        SyncResult,
        plan_sync,
        winner,
    )
    from schemas.workflows import JobProgress, PublishEvents
    from workflows.prefetch import FIND_RETRY, PULL_RETRY

# As a prefetch's: listing like finding priors, moving a study like pulling one.
LIST_RETRY, MOVE_RETRY = FIND_RETRY, PULL_RETRY
# Studies compared per activity: by series, one C-FIND (or QIDO) each; by instances, every
# instance read on both sides, so fewer at a time, each heartbeating.
COMPARE_BATCH = {"series": 100, "instances": 10}
SETTLE_BATCH = 100


def sync_workflow_id(relation: str) -> str:
    return f"sync:{relation}"


@workflow.defn
class SyncWorkflow:
    def __init__(self) -> None:
        self._result: SyncResult | None = None
        self._planned = 0
        self._handled = 0
        self._stage = "listing"

    @workflow.query
    def progress(self) -> JobProgress:
        """Studies moved, compared (or failed) of those listed."""
        return JobProgress(done=self._handled, total=self._planned or None, stage=self._stage)

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
        result.studies_here, result.studies_there = len(here), len(there)
        self._planned = len(plan.pull) + len(plan.push) + len(plan.both)
        self._stage = "moving"
        for study in plan.pull:
            await self._pull(relation, study.study_instance_uid, [], study.instances)
            self._handled += 1
        for study in plan.push:
            await self._push(relation, study.study_instance_uid, [])
            self._handled += 1
        self._stage = "comparing"
        conflicts: list[InstanceConflict] = []
        size = COMPARE_BATCH[relation.compare]
        for at in range(0, len(plan.both), size):
            for diff in await self._compare(relation, plan.both[at : at + size]):
                await self._apply(relation, diff)
                conflicts += diff.conflicts
            self._handled = min(self._planned, self._handled + size)
        await self._settle(relation, conflicts)
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
            series_pulled=result.series_pulled,
            series_pushed=result.series_pushed,
            conflicts=len(result.conflicts),
        )
        found: list[Event] = [
            SyncConflictFound(
                event_id=workflow.uuid4(),
                occurred_at=workflow.now(),
                relation=relation.name,
                node=relation.node,
                workflow_id=workflow.info().workflow_id,
                conflict=c,
            )
            for c in result.conflicts
        ]
        await workflow.execute_activity_method(
            EventActivities.publish_events,
            PublishEvents(events=[*found, completed]),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        return result

    async def _pull(
        self, relation: SyncRelation, uid: str, series: list[str], expected: int | None = None
    ) -> None:
        result = self._done()
        remote = RemoteStudy(source=relation.node, study_instance_uid=uid)
        pull = PullStudy(
            study=remote, via=relation.pull_via, expected=expected, series_instance_uids=series
        )
        try:
            await workflow.execute_activity_method(
                PrefetchActivities.pull_study,
                pull,
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=timedelta(seconds=90),
                retry_policy=MOVE_RETRY,
            )
        except ActivityError as exc:
            result.failed.append(f"{uid}: pull: {exc.cause or exc}")
            return
        if uid not in result.pulled:
            result.pulled.append(uid)
        result.series_pulled += len(series)

    async def _push(self, relation: SyncRelation, uid: str, series: list[str]) -> None:
        result = self._done()
        push = PushStudy(
            node=relation.node,
            via=relation.push_via,
            study_instance_uid=uid,
            series_instance_uids=series,
        )
        try:
            await workflow.execute_activity_method(
                SyncActivities.push_study,
                push,
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=timedelta(seconds=90),
                retry_policy=MOVE_RETRY,
            )
        except ActivityError as exc:
            result.failed.append(f"{uid}: push: {exc.cause or exc}")
            return
        if uid not in result.pushed:
            result.pushed.append(uid)
        result.series_pushed += len(series)

    async def _compare(self, relation: SyncRelation, studies: list[str]) -> list[StudyDiff]:
        request = CompareStudies(
            node=relation.node,
            via=relation.pull_via,
            compare=relation.compare,
            direction=relation.direction,
            studies=studies,
        )
        try:
            return await workflow.execute_activity_method(
                SyncActivities.compare_studies,
                request,
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(seconds=90),
                retry_policy=LIST_RETRY,
            )
        except ActivityError as exc:
            self._done().failed += [f"{uid}: compare: {exc.cause or exc}" for uid in studies]
            return []

    async def _apply(self, relation: SyncRelation, diff: StudyDiff) -> None:
        """Move what differs in one study both sides hold; count it as the same otherwise."""
        if diff.same:
            self._done().same += 1
        if diff.pull_series:
            await self._pull(relation, diff.study_instance_uid, diff.pull_series)
        if diff.push_series:
            await self._push(relation, diff.study_instance_uid, diff.push_series)

    async def _settle(self, relation: SyncRelation, conflicts: list[InstanceConflict]) -> None:
        """Each conflict's winner (by the relation's policy) sent to the other side; the rest
        kept as they are on both sides, and recorded either way."""
        result = self._done()
        chosen: list[tuple[InstanceConflict, Side]] = []
        for conflict in conflicts:
            side = winner(conflict, relation.conflicts, relation.direction)
            if side is None:
                result.conflicts.append(
                    SettledConflict(
                        **conflict.model_dump(), policy=relation.conflicts, resolution="kept-both"
                    )
                )
            else:
                chosen.append((conflict, side))
        for at in range(0, len(chosen), SETTLE_BATCH):
            batch = chosen[at : at + SETTLE_BATCH]
            request = SettleConflicts(
                node=relation.node,
                push_via=relation.push_via,
                policy=relation.conflicts,
                conflicts=[c for c, _ in batch],
                winners=[w for _, w in batch],
            )
            try:
                result.conflicts += await workflow.execute_activity_method(
                    SyncActivities.settle_conflicts,
                    request,
                    start_to_close_timeout=timedelta(hours=1),
                    heartbeat_timeout=timedelta(seconds=90),
                    retry_policy=MOVE_RETRY,
                )
            except ActivityError as exc:
                result.failed += [
                    f"{c.study_instance_uid}: conflict {c.sop_instance_uid}: {exc.cause or exc}"
                    for c, _ in batch
                ]

    def _done(self) -> SyncResult:
        assert self._result is not None
        return self._result
