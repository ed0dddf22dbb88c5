"""Event-driven reactors for the associations the gateway accepts.

pynetdicom runs two threads per association that poll: the DUL thread sleeps 1 ms whenever
it has nothing to do and then looks at the socket again, and the association thread sleeps
1 ms before every look at the DIMSE queue. A request therefore waits for up to three of
those sleeps on its way through the SCP, and every open association wakes both threads 1,000
times a second for nothing (8-11% of a core per idle association, measured by
bench/dimse_floor.py, against 0.6% for Orthanc).

`EventDrivenReactors`, bound to EVT_CONN_OPEN (which pynetdicom fires before it starts an
accepted association's threads), keeps pynetdicom's state machine, PDU and DIMSE code and
only changes how the two threads wait:

- the DUL thread blocks in select() on the peer's socket and a wake-up pipe, which is
  written whenever another thread hands it a primitive or tells it to stop;
- the association thread blocks on an Event that is set whenever a DIMSE message, an ACSE
  primitive (release or abort) or a pause request arrives, or the DUL thread ends.

Both still wake every `IDLE_WAKE` seconds so that the ARTIM and network timers fire. One
change of order: after sending a PDU, the DUL reads a PDU that is waiting before it sends the
next, so a C-CANCEL is not stuck behind a long run of C-FIND responses.
Requestor associations (ours, from C-MOVE or forwarding) keep pynetdicom's own loop: their
DUL thread is already running when EVT_CONN_OPEN fires.

Over TLS, decrypted bytes can wait inside the SSL object where select() does not see them:
the DUL looks at `pending()` before it blocks. The DUL also refuses a PDU longer than we
accept before reading its body (over TLS too): pynetdicom reads
whatever length a PDU header claims, so a peer could otherwise make the gateway hold
gigabytes for one PDU. Such a PDU is treated as invalid (Evt19): the association is aborted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider

log = logging.getLogger(__name__)

# Upper bound on any wait: how late an ARTIM or network timeout may be noticed.
IDLE_WAKE = 0.05
P_DATA_TF = 0x04
# Other PDUs (an A-ASSOCIATE-RQ with hundreds of presentation contexts) may be longer than a
# small maximum PDU length, which only bounds P-DATA; they get at least this much.
MIN_CONTROL_PDU_LIMIT = 1024 * 1024
_PDU_HEADER = struct.Struct(">BBL")


class WakingQueue(queue.Queue[Any]):
    """A queue that calls `wake` after every put, so a consumer can block elsewhere."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def _put(self, item: Any) -> None:
        super()._put(item)
        self._wake()


class EventDrivenDUL(DULServiceProvider):
    """pynetdicom's DUL loop, except that 'nothing to do' blocks instead of sleeping 1 ms.

    The loop (DULServiceProvider.run_reactor) calls `_is_transport_event` whenever no local
    primitive is waiting; with `_run_loop_delay` 0 its sleep becomes a bare GIL yield, so
    blocking here, only when no event or primitive is queued, is the loop's only wait."""

    def __init__(self, assoc: Association) -> None:
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._wake_pending = False
        # Guards the pipe's closing: a wake() after it must not write to a reused fd number.
        self._wake_lock = threading.Lock()
        self._wake_closed = False
        self._stopping = False
        self._sent_last = False
        # Set once a PDU was refused for its announced length: its body is never read.
        self._refused = False
        # What we told the peer it may send us (0: no bound), set by EventDrivenReactors.
        self.max_pdu_received = 0
        super().__init__(assoc)
        self._run_loop_delay = 0.0
        self.event_queue = WakingQueue(self.wake)
        self.to_provider_queue = WakingQueue(self.wake)
        # Release and abort primitives for the association thread.
        self.to_user_queue = WakingQueue(self._wake_association)

    # pynetdicom stops the loop by assigning this flag (kill_dul, stop_dul): wake it too.
    @property
    def _kill_thread(self) -> bool:
        return self._stopping

    @_kill_thread.setter
    def _kill_thread(self, value: bool) -> None:
        self._stopping = value
        if value:
            self.wake()

    def wake(self) -> None:
        # One byte outstanding is enough; the flag is cleared only after draining, before
        # the loop looks at its queues again, so no put can go unnoticed.
        if self._wake_pending:
            return
        with self._wake_lock:
            if not self._wake_closed:
                self._wake_pending = True
                with contextlib.suppress(BlockingIOError):  # pipe full: a wake is pending
                    os.write(self._wake_write, b"w")

    def _drain_wake(self) -> None:
        # Drain first, then clear: a wake() in between sees the flag still set and writes
        # nothing, and the loop finds its item on the next look at the queues. Clearing first
        # let such a wake() write a byte this read then swallowed, leaving the flag set with
        # the pipe empty: every later wake() was skipped and each message waited IDLE_WAKE.
        os.read(self._wake_read, 4096)
        self._wake_pending = False

    def close_wake_pipe(self) -> None:
        with self._wake_lock:
            if not self._wake_closed:
                self._wake_closed = True
                os.close(self._wake_read)
                os.close(self._wake_write)

    def _wake_association(self) -> None:
        wake = getattr(self.assoc, "wake_reactor", None)
        if wake is not None:
            wake()

    def _process_recv_primitive(self) -> bool:
        # pynetdicom's loop sends whenever a primitive is queued and reads the socket only
        # when none is, so a long run of responses (a C-FIND with thousands of matches)
        # would hide a C-CANCEL until the last was sent. After each send, a PDU waiting to
        # be read goes first.
        if self._sent_last and self.socket is not None and self.socket.ready:
            self._sent_last = False
            return False
        self._sent_last = super()._process_recv_primitive()
        return self._sent_last

    def _read_pdu_data(self) -> None:
        if self._refused:
            self._discard_input()
            return
        if self._pdu_too_long():
            self._refused = True
            self.event_queue.put("Evt19")  # invalid PDU: A-ABORT, connection closed
            return
        super()._read_pdu_data()

    def _discard_input(self) -> None:
        """Drop what the peer sends after its PDU was refused; its close ends the association.

        The refused header stays unread in the socket after the A-ABORT (Sta13 waits for the
        peer to close): peeking it again on every loop logged the refusal and sent another
        A-ABORT each time, and a peer that had closed its side was not noticed until ARTIM
        (30 s), holding the thread. Reading and dropping the rest lets its end arrive as Evt17.
        """
        sock = self.socket.socket if self.socket is not None else None
        try:
            data = sock.recv(65536) if sock is not None else b""
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            self.event_queue.put("Evt17")  # transport connection closed

    def _peek_header(self) -> bytes | None:
        """The next PDU's header, left for pynetdicom's read; None when it cannot be had."""
        assoc_sock = self.socket
        sock = assoc_sock.socket if assoc_sock is not None else None
        if sock is None:
            return None
        if sock.__class__ is socket.socket:
            try:
                return sock.recv(_PDU_HEADER.size, socket.MSG_PEEK | socket.MSG_WAITALL)
            except OSError:
                return None  # pynetdicom's own read reports the broken connection
        if not isinstance(sock, ssl.SSLSocket) or assoc_sock is None:
            return None
        # TLS cannot peek: read the header, and hand it to pynetdicom's first recv() (its
        # read of a PDU starts with exactly these 6 bytes), which then reads on as usual.
        try:
            header = bytes(assoc_sock.recv(_PDU_HEADER.size))
        except OSError:
            header = b""

        def replay(nr_bytes: int) -> bytearray:
            del assoc_sock.recv  # the class's method again from the next call on
            return bytearray(header)

        assoc_sock.recv = replay  # type: ignore[method-assign]
        return header

    def _pdu_too_long(self) -> bool:
        """Whether the waiting PDU's header claims more than we accept (before its body is
        read)."""
        limit = self.max_pdu_received
        if not limit:
            return False
        header = self._peek_header()
        if header is None or len(header) < _PDU_HEADER.size:
            return False
        pdu_type, _, length = _PDU_HEADER.unpack(header)
        allowed = limit if pdu_type == P_DATA_TF else max(limit, MIN_CONTROL_PDU_LIMIT)
        if length <= allowed:
            return False
        log.warning(
            "aborting association: PDU type 0x%02X of %d bytes, over the %d accepted",
            pdu_type,
            length,
            allowed,
        )
        return True

    def _is_transport_event(self) -> bool:
        if super()._is_transport_event():
            return True
        if self._stopping or self.event_queue.qsize() or self.to_provider_queue.qsize():
            return False
        sock = self.socket.socket if self.socket is not None else None
        if sock is not None and getattr(sock, "pending", lambda: 0)():
            return False  # TLS already holds decrypted bytes that select() cannot see
        waiting: list[Any] = [self._wake_read] if sock is None else [self._wake_read, sock]
        try:
            readable, _, _ = select.select(waiting, [], [], IDLE_WAKE)
        except (OSError, ValueError):
            return False  # socket closed under us: the next look reports it (Evt17)
        if self._wake_read in readable:
            self._drain_wake()
        return False  # the loop goes round at once and reads whatever became ready

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        except ValueError as exc:
            # pynetdicom decodes some invalid PDUs only to raise while turning them into
            # primitives (an even presentation context ID in an A-ASSOCIATE-RQ, found by
            # fuzzing), killing this thread with a traceback and the peer unanswered.
            log.warning("aborting association: undecodable PDU: %s", exc)
            self._abort_undecodable()
        finally:
            if not self.assoc.is_established:
                # The connection ended before an association existed (a bad first PDU, a
                # peer that closed): pynetdicom's acceptor thread waits acse_timeout (30 s)
                # for the A-ASSOCIATE-RQ without looking at us, each such thread counting
                # against max_associations, so 64 bad connections locked everyone out for
                # 30 s. None is what its wait returns on time-out: it ends at once.
                self.to_user_queue.put(None)
            self._wake_association()
            self.close_wake_pipe()

    def _abort_undecodable(self) -> None:
        sock = self.socket.socket if self.socket is not None else None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.sendall(_ABORT_INVALID_PARAMETER)
        with contextlib.suppress(OSError):
            sock.close()


# A-ABORT (PS3.8 9.3.8): source 2, the UL service-provider; reason 6, invalid PDU
# parameter value.
_ABORT_INVALID_PARAMETER = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 2, 6])


class EventDrivenAssociation(Association):
    """An accepted association whose reactor waits on `_activity` instead of sleeping 1 ms.

    Same steps, in the same order, as pynetdicom's acceptor loop: honour a pause, serve one
    DIMSE message, answer a release, stop on abort, on the DUL's end or the network timeout.
    """

    _activity: threading.Event
    # Answers Query/Retrieve C-FIND itself (ingest/dimse/find_responder.py), if given.
    _direct_find: Any

    def _serve_request(self, msg: Any, context_id: int) -> None:
        direct = self._direct_find
        if direct is not None and direct.serve(self, msg, context_id):
            return
        super()._serve_request(msg, context_id)

    def wake_reactor(self) -> None:
        self._activity.set()

    def kill(self) -> None:
        self.wake_reactor()
        super().kill()

    def _work_waiting(self) -> bool:
        return bool(self.dimse.msg_queue.qsize() or self.dul.to_user_queue.qsize())

    def _run_reactor(self) -> None:
        self._is_paused = False
        while not self._kill:
            if not self._work_waiting():
                self._activity.wait(IDLE_WAKE)
            # Cleared before looking, so anything put from now on sets it again.
            self._activity.clear()

            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, context_id)  # type: ignore[arg-type]

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)  # so EVT_ACSE_RECV fires for the abort
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


class EventDrivenReactors:
    """Bound to EVT_CONN_OPEN: swap in the event-driven reactors before the association's
    threads start. A requestor association (its DUL already running) is left as it is.
    `direct_find` (a DirectFind) answers Query/Retrieve C-FIND requests on them."""

    def __init__(self, direct_find: Any = None) -> None:
        self.direct_find = direct_find

    def __call__(self, event: Any) -> None:
        assoc = event.assoc
        if not assoc.is_acceptor or assoc.is_alive() or assoc.dul.is_alive():
            return
        old, dul = assoc.dul, EventDrivenDUL(assoc)
        dul.socket = old.socket
        # The socket already queued 'connection open' (Evt5) for the state machine.
        while not old.event_queue.empty():
            dul.event_queue.put(old.event_queue.get())
        dul.max_pdu_received = int(assoc.acceptor.maximum_length or 0)
        assoc._activity = threading.Event()
        assoc._direct_find = self.direct_find
        assoc.__class__ = EventDrivenAssociation
        assoc.dul = dul
        assoc.dimse.msg_queue = WakingQueue(assoc.wake_reactor)
        # The timers live in the DUL: apply the association's timeouts to the new one.
        assoc.acse_timeout = assoc.acse_timeout
        assoc.network_timeout = assoc.network_timeout
