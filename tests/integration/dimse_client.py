"""A pynetdicom C-STORE sender that records exactly which instances were acknowledged."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pynetdicom import AE, evt

from infra.dimse.nodelay import set_nodelay


def send_all(
    address: tuple[str, int], datasets: Iterable[Dataset], acked: list[str], lock: threading.Lock
) -> list[int]:
    """Send on one association until done or the peer vanishes; returns non-success statuses."""
    datasets = list(datasets)
    ae = AE(ae_title="CRASHSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    for syntax in {(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}:
        ae.add_requested_context(*syntax)
    assoc = ae.associate(*address, ae_title="PACS", evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)])
    failures: list[int] = []
    if not assoc.is_established:
        return [-1]
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if not status or "Status" not in status:
                break  # association gone: nothing more is acknowledged
            if status.Status == 0:
                with lock:
                    acked.append(ds.SOPInstanceUID)
            else:
                failures.append(int(status.Status))
    finally:
        if assoc.is_established:
            assoc.release()
    return failures
