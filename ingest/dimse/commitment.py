"""Storage Commitment Push Model SCP: N-ACTION (1.2.840.10008.1.20.1) starts the workflow.

The N-ACTION is answered as soon as StorageCommitmentWorkflow has started (the request is
then durable). A watcher thread then waits, through the workflow's `claim_report` update,
for the result while the requester's association lives, and sends the N-EVENT-REPORT on it;
if the association ends first it tells the workflow, which then reports on a new association
(see workflows/storage_commitment.py for the whole hand-over).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter
from pydicom.dataset import Dataset
from temporalio.client import Client, WorkflowHandle
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from infra.dicom.statuses import (
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    NO_SUCH_ACTION_TYPE,
    PROCESSING_FAILURE,
    SUCCESS,
    status_dataset,
)
from infra.dimse.commitment_report import send_on
from ingest.dimse.temporal_bridge import TemporalBridge
from schemas.commitment import (
    ClaimRequest,
    ClaimResult,
    CommitmentRef,
    DeliveryOutcome,
    RequesterGone,
    StorageCommitmentInput,
)
from schemas.worklist import Uid
from workflows.storage_commitment import StorageCommitmentWorkflow, search_attributes, workflow_id

log = logging.getLogger(__name__)

REQUEST_STORAGE_COMMITMENT = 1  # the only Action Type ID of the Push Model (PS3.4 J.3.2)
_WATCH_INTERVAL = 0.2
_UID_CHECK: TypeAdapter[str] = TypeAdapter(Uid)


def commitment_request(info: Dataset) -> tuple[str, list[CommitmentRef]]:
    """TransactionUID and ReferencedSOPSequence of an N-ACTION; ValueError says what is wrong."""
    transaction_uid = str(info.get("TransactionUID", "") or "").strip()
    if not transaction_uid:
        raise KeyError("TransactionUID is required")
    _UID_CHECK.validate_python(transaction_uid)
    refs = []
    for item in info.get("ReferencedSOPSequence", []) or []:
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "").strip()
        sop_instance = str(item.get("ReferencedSOPInstanceUID", "") or "").strip()
        if not sop_class or not sop_instance:
            raise KeyError("each ReferencedSOPSequence item needs a class and an instance UID")
        refs.append(CommitmentRef(sop_class_uid=sop_class, sop_instance_uid=sop_instance))
    if not refs:
        raise KeyError("ReferencedSOPSequence is required and may not be empty")
    return transaction_uid, refs


class CommitmentHandler:
    """EVT_N_ACTION for the Storage Commitment Push Model."""

    def __init__(
        self,
        bridge: TemporalBridge,
        task_queue: str,
        wait_timeout: float,
        log_positions: Callable[[], dict[int, int]] = dict,
    ) -> None:
        self.bridge = bridge
        self.task_queue = task_queue
        self.wait_timeout = wait_timeout
        # How far this gateway's announcements reached: a modality asks to commit what it
        # sent, mostly through this gateway, whose events the check then knows to wait for.
        self.log_positions = log_positions

    def __call__(self, event: Any) -> tuple[Dataset, Dataset | None]:
        if event.action_type != REQUEST_STORAGE_COMMITMENT:
            return status_dataset(NO_SUCH_ACTION_TYPE, f"no action type {event.action_type}"), None
        calling_ae = event.assoc.requestor.ae_title.strip()
        try:
            transaction_uid, refs = commitment_request(event.action_information)
        except KeyError as exc:
            return status_dataset(MISSING_ATTRIBUTE, str(exc.args[0])), None
        except Exception as exc:  # noqa: BLE001 - the peer's dataset is at fault
            return status_dataset(INVALID_ATTRIBUTE_VALUE, f"bad request: {exc}"), None
        start = StorageCommitmentInput(
            transaction_uid=transaction_uid,
            calling_ae=calling_ae,
            references=refs,
            wait_timeout_seconds=self.wait_timeout,
            log_positions=self.log_positions(),
        )

        async def begin(client: Client) -> WorkflowHandle[Any, Any]:
            # A repeated request of a running transaction attaches to it; one of a finished
            # transaction is checked and reported afresh.
            return await client.start_workflow(
                StorageCommitmentWorkflow.run,
                start,
                id=workflow_id(transaction_uid),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=TypedSearchAttributes(search_attributes(start)),
            )

        try:
            handle = self.bridge.call(begin)
        except Exception as exc:  # noqa: BLE001 - any failure: the peer gets a status
            log.error("commitment %s could not be started: %r", transaction_uid, exc)
            return status_dataset(PROCESSING_FAILURE, "commitment could not be recorded now"), None
        log.info("commitment %s from %s: %d instances", transaction_uid, calling_ae, len(refs))
        watcher = ReportWatcher(self.bridge, handle, event.assoc)
        threading.Thread(target=watcher.run, name=f"commit-{transaction_uid}", daemon=True).start()
        return status_dataset(SUCCESS), None


class ReportWatcher:
    """Holds a claim on the report while the association lives; sends it when granted."""

    def __init__(
        self, bridge: TemporalBridge, handle: WorkflowHandle[Any, Any], assoc: Any
    ) -> None:
        self.bridge = bridge
        self.handle = handle
        self.assoc = assoc

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("commitment watcher for %s failed", self.handle.id)

    def _run(self) -> None:
        handle = self.handle

        async def claim(_: Client) -> ClaimResult:
            result: ClaimResult = await handle.execute_update(
                StorageCommitmentWorkflow.claim_report, ClaimRequest()
            )
            return result

        pending: concurrent.futures.Future[ClaimResult] = self.bridge.submit(claim)
        while not pending.done() and self.assoc.is_established:
            time.sleep(_WATCH_INTERVAL)
        if not pending.done():
            # The requester let go: the workflow reports on a new association right away.
            self._signal_gone()
            pending.cancel()
            return
        result = pending.result()
        if not result.granted or result.report is None:
            return
        try:
            delivered, detail = send_on(self.assoc, result.report)
        except Exception as exc:  # noqa: BLE001 - any failure means "send it another way"
            delivered, detail = False, repr(exc)
        log.info("commitment %s on the same association: %s %s", handle.id, delivered, detail)

        async def confirm(_: Client) -> None:
            await handle.signal(
                StorageCommitmentWorkflow.report_delivered,
                DeliveryOutcome(delivered=delivered, detail=detail),
            )

        self.bridge.call(confirm)

    def _signal_gone(self) -> None:
        handle = self.handle

        async def gone(_: Client) -> None:
            await handle.signal(
                StorageCommitmentWorkflow.requester_gone,
                RequesterGone(detail="association ended before the report was ready"),
            )

        self.bridge.call(gone)
