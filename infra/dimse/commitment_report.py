"""The Storage Commitment N-EVENT-REPORT: built and sent the same way on either path."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)

from infra.dimse.nodelay import set_nodelay
from infra.dimse.reactor_gate import guard_reactor
from schemas.commitment import CommitmentReport

log = logging.getLogger(__name__)


def event_report_dataset(report: CommitmentReport) -> Dataset:
    """PS3.4 J.3.3.1.1: TransactionUID, ReferencedSOPSequence, FailedSOPSequence."""
    ds = Dataset()
    ds.TransactionUID = report.transaction_uid
    if report.success:
        ds.ReferencedSOPSequence = [
            _ref(r.sop_class_uid, r.sop_instance_uid) for r in report.success
        ]
    if report.failed:
        items = []
        for failure in report.failed:
            item = _ref(failure.ref.sop_class_uid, failure.ref.sop_instance_uid)
            item.FailureReason = failure.failure_reason
            items.append(item)
        ds.FailedSOPSequence = items
    return ds


def _ref(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def send_on(assoc: Any, report: CommitmentReport) -> tuple[bool, str]:
    """Send the report on an established association; (answered with success, detail)."""
    status, _ = assoc.send_n_event_report(
        event_report_dataset(report),
        report.event_type_id,
        StorageCommitmentPushModel,
        StorageCommitmentPushModelInstance,
    )
    if not status or "Status" not in status:
        return False, "no N-EVENT-REPORT response (association ended or timed out)"
    if status.Status != 0:
        return False, f"N-EVENT-REPORT answered with status 0x{int(status.Status):04X}"
    return True, ""


def send_on_new_association(
    report: CommitmentReport,
    our_ae: str,
    peer_ae: str,
    host: str,
    port: int,
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> tuple[bool, str]:
    """Open an association to the requester (we propose the commitment SOP class) and send;
    over TLS with `tls` (the requester's port speaks TLS)."""
    ae = AE(ae_title=our_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = ae.associate(
        host,
        port,
        ae_title=peer_ae,
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)],
        tls_args=(tls, host) if tls is not None else None,
    )
    if not assoc.is_established:
        over = " over TLS" if tls is not None else ""
        return False, f"could not associate with {peer_ae} at {host}:{port}{over}"
    guard_reactor(assoc)
    try:
        return send_on(assoc, report)
    finally:
        if assoc.is_established:
            assoc.release()
