"""Closes a race in pynetdicom between an association's reactor and its send_*() calls.

Every send_*() (C-ECHO/STORE/FIND/MOVE/GET, release) pauses the reactor thread so that the
reactor does not take the peer's response off the DIMSE queue: it clears
`_reactor_checkpoint` and spins until `_is_paused`. But the reactor sets `_is_paused = True`
*before* calling `checkpoint.wait()` and False after it; a reactor preempted just after a
wait() that returned at once is seen as paused, the request goes out, and the reactor then
resumes and steals the response ("Received unexpected C-STORE service message"). The sender
waits for its DIMSE timeout and the association is lost. Under CPU contention this happens
every few hundred messages (pynetdicom 3.0.4, same code on its main branch).

`guard_reactor` swaps in a checkpoint whose `clear()` returns only once the reactor is
really parked behind it, so the spin that follows in pynetdicom is then always truthful.
"""

from __future__ import annotations

import threading
from typing import Any


class ReactorGate(threading.Event):
    """An Event whose clear() waits until the reactor thread is blocked in wait()."""

    def __init__(self, assoc: Any) -> None:
        super().__init__()
        self.set()
        self._assoc = assoc
        self._lock = threading.Lock()
        self._parked = threading.Event()
        self._reactor: int | None = None

    def wait(self, timeout: float | None = None) -> bool:
        # Only the reactor thread waits on the checkpoint.
        self._reactor = threading.get_ident()
        with self._lock:
            if self.is_set():
                return True
            # Marked under the lock that clear() takes: never blocked without being marked.
            self._parked.set()
        return super().wait(timeout)

    def clear(self) -> None:
        with self._lock:
            self._parked.clear()
            super().clear()
        wake = getattr(self._assoc, "wake_reactor", None)
        if wake is not None:
            wake()  # an event-driven reactor may be waiting for work, not at the checkpoint
        if threading.get_ident() == self._reactor:
            return  # a send from inside a handler: the reactor is this thread, not running
        while not self._parked.wait(0.01):
            if not self._assoc.is_alive() or getattr(self._assoc, "_kill", False):
                return  # no reactor left to park; pynetdicom's own checks take over


def guard_reactor(assoc: Any) -> None:
    """Install the gate; call once the association exists (before or after it is running)."""
    if not isinstance(getattr(assoc, "_reactor_checkpoint", None), ReactorGate):
        assoc._reactor_checkpoint = ReactorGate(assoc)
