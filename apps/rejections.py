"""The dispatcher's IOCM handler: each received rejection note (a KOS titled e.g. "Rejected
for Quality Reasons") starts a RejectionWorkflow, which deletes what the note lists, before
the dispatcher commits its place in the log, so a crash re-reads the note rather than
forgets it; the workflow id makes the second start a no-op.

Any node allowed to store may send a rejection note, as in IHE IOCM (the node registry's
permissions decide who may store); the deletions are audited as made by `iocm:<its AE>`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from infra.dicom.rejection import rejection_note
from infra.settings import Settings
from schemas.events import InstanceReceived
from schemas.lifecycle import RejectionInput, RejectionNote
from workflows.deletion import study_keys
from workflows.rejection import RejectionWorkflow, rejection_workflow_id

log = logging.getLogger(__name__)


def deletion_ids(note: RejectionNote) -> list[str]:
    """One per scope, the same each time the note is read."""
    return [
        uuid.uuid5(
            uuid.NAMESPACE_OID,
            f"iocm/{note.sop_instance_uid}/{s.study_instance_uid}/{s.series_instance_uid}",
        ).hex
        for s in note.scopes
    ]


def rejection_input(event: InstanceReceived, grace_seconds: float) -> RejectionInput | None:
    """What the received instance rejects, if it is a rejection note listing anything."""
    if event.metadata is None:
        # Only a header too large for the event travels without it: an enhanced multi-frame
        # image's, never a KOS's (or an event older than headers in events).
        return None
    note = rejection_note(event.instance.sop_class_uid, event.metadata)
    if note is None:
        return None
    if not note.scopes:
        log.warning("rejection note %s lists no instance: ignored", note.sop_instance_uid)
        return None
    return RejectionInput(
        note=note,
        deletion_ids=deletion_ids(note),
        patient_id=event.patient_id,
        actor=f"iocm:{event.calling_ae or event.client}",
        grace_seconds=grace_seconds,
    )


class Rejections:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def on_received(self, events: Iterable[InstanceReceived]) -> int:
        """Start the rejections these received instances make; how many started."""
        started = 0
        for event in events:
            job = rejection_input(event, self.settings.lifecycle.delete_grace_seconds)
            if job is not None:
                started += await self._start(job)
        return started

    async def _start(self, job: RejectionInput) -> int:
        try:
            await self.client.start_workflow(
                RejectionWorkflow.run,
                job,
                id=rejection_workflow_id(job.note.sop_instance_uid),
                task_queue=self.settings.temporal.ingest_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=study_keys(job.note.study_instance_uid, job.patient_id),
            )
        except WorkflowAlreadyStartedError:
            return 0  # the note again, or re-read after a crash: rejected once
        log.info(
            "rejection note %s (%s): %d series",
            job.note.sop_instance_uid,
            job.note.reason,
            len(job.note.scopes),
        )
        return 1
