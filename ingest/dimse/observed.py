"""pynetdicom notification handlers that feed infra/metrics.py: associations open and total
by calling AE, every DIMSE response by operation and status class, C-STORE latency and
bytes, and the table of open associations behind `GET /api/associations`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pynetdicom import evt

from infra import metrics

# A response's message type → the operation label; responses of other types are not counted.
_OPERATIONS = {
    "C_ECHO_RSP": "C-ECHO",
    "C_STORE_RSP": "C-STORE",
    "C_FIND_RSP": "C-FIND",
    "C_MOVE_RSP": "C-MOVE",
    "C_GET_RSP": "C-GET",
    "N_CREATE_RSP": "N-CREATE",
    "N_SET_RSP": "N-SET",
    "N_ACTION_RSP": "N-ACTION",
    "N_EVENT_REPORT_RSP": "N-EVENT-REPORT",
}


class AssociationObserver:
    """Counts what the gateway's associations do; `registered` bounds the AE label."""

    def __init__(
        self,
        registered: Callable[[str], bool],
        table: metrics.AssociationTable = metrics.ASSOCIATIONS,
    ) -> None:
        self.registered = registered
        self.table = table
        self._labels: dict[int, str] = {}
        self._store_started: dict[int, float] = {}
        self._lock = threading.Lock()

    def handlers(self) -> list[tuple[Any, Callable[[Any], None]]]:
        return [
            (evt.EVT_ACCEPTED, self.accepted),
            (evt.EVT_RELEASED, self.ended),
            (evt.EVT_ABORTED, self.ended),
            (evt.EVT_CONN_CLOSE, self.ended),
            (evt.EVT_DIMSE_RECV, self.received),
            (evt.EVT_DIMSE_SENT, self.sent),
        ]

    def accepted(self, event: Any) -> None:
        key = id(event.assoc)
        requestor = event.assoc.requestor
        label = metrics.ae_label(requestor.ae_title, self.registered)
        with self._lock:
            self._labels[key] = label
        metrics.ASSOCIATIONS_TOTAL.labels(label).inc()
        metrics.ASSOCIATIONS_OPEN.labels(label).inc()
        self.table.opened(key, requestor.ae_title.strip(), f"{requestor.address}:{requestor.port}")

    def ended(self, event: Any) -> None:
        # Released, aborted and connection closed can all fire for one association.
        key = id(event.assoc)
        with self._lock:
            label = self._labels.pop(key, None)
            self._store_started.pop(key, None)
        self.table.closed(key)
        if label is not None:
            metrics.ASSOCIATIONS_OPEN.labels(label).dec()

    def received(self, event: Any) -> None:
        message = event.message
        if type(message).__name__ != "C_STORE_RQ":
            return
        key = id(event.assoc)
        with self._lock:
            self._store_started[key] = time.perf_counter()
        dataset = message.data_set  # the encoded data set, not decoded here
        size = dataset.getbuffer().nbytes if dataset is not None else 0
        metrics.RECEIVED_BYTES.inc(size)
        self.table.operation(key, size)

    def sent(self, event: Any) -> None:
        message = event.message
        kind = type(message).__name__
        operation = _OPERATIONS.get(kind)
        if operation is None:
            return
        status = metrics.status_label(int(message.command_set.Status))
        if status == "pending":
            return  # one count per operation: its final response
        metrics.DIMSE_OPERATIONS.labels(operation, status).inc()
        key = id(event.assoc)
        if kind == "C_STORE_RSP":
            with self._lock:
                started = self._store_started.pop(key, None)
            if started is not None:
                metrics.CSTORE_SECONDS.observe(time.perf_counter() - started)
        else:
            self.table.operation(key)


def direct_find_answered(assoc: Any) -> None:
    """A C-FIND whose final success ingest/dimse/find_responder.py sent as bytes, past
    pynetdicom's send_msg and so past EVT_DIMSE_SENT: counted here instead."""
    metrics.DIMSE_OPERATIONS.labels("C-FIND", "success").inc()
    metrics.ASSOCIATIONS.operation(id(assoc))
