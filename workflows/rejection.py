"""RejectionWorkflow: an IHE IOCM rejection note (a KOS titled e.g. "Rejected for Quality
Reasons") deletes the instances it lists, as `DELETE` does (api/rest/deletion.py), in the
same order: tombstones first, then a DeletionWorkflow per deletion (its grace period, then
the purge), then `pacs.instances.deleted`, which hides them from every read model.

Started by the dispatcher when the note is received; id `iocm:<the note's SOP Instance
UID>`, so the note sent twice, or re-read after a crash, rejects once. Deletion ids come
with the input (derived from the note), so a retried step repeats the same deletions.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.deletion import DeletionActivities
    from schemas.lifecycle import RejectionInput, RejectionResult
    from schemas.workflows import JobProgress
    from workflows.deletion import record_deletions

# The catalog or storage down: keep trying (the note is stored; its effect must follow).
STEP_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))


def rejection_workflow_id(note_sop_instance_uid: str) -> str:
    return f"iocm:{note_sop_instance_uid}"


@workflow.defn
class RejectionWorkflow:
    def __init__(self) -> None:
        self._done = False

    @workflow.query
    def progress(self) -> JobProgress:
        return JobProgress(done=int(self._done), total=1, stage="done" if self._done else "")

    @workflow.run
    async def run(self, start: RejectionInput) -> RejectionResult:
        note = start.note
        stored = await workflow.execute_activity_method(
            DeletionActivities.tombstone_rejected,
            start,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=STEP_RETRY,
        )
        reason = f"{note.reason} ({note.reason_code}), note {note.sop_instance_uid}"
        await record_deletions(stored, start.grace_seconds, start.patient_id, reason, start.actor)
        self._done = True
        rejected = {u for done in stored for u in done.scope.sop_instance_uids}
        listed = [u for scope in note.scopes for u in scope.sop_instance_uids]
        return RejectionResult(
            deletions=[done.deletion_id for done in stored],
            instances=len(rejected),
            not_found=[u for u in listed if u not in rejected],
        )
