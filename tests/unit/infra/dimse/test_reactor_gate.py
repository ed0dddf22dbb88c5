"""The reactor gate: a sender's clear() returns only once pynetdicom's reactor is parked."""

from __future__ import annotations

import threading
import time

from infra.dimse.reactor_gate import ReactorGate


class FakeAssociation:
    _kill = False

    def is_alive(self) -> bool:
        return True


def test_clear_waits_for_a_reactor_preempted_after_passing_the_checkpoint() -> None:
    gate = ReactorGate(FakeAssociation())
    passed, resume = threading.Event(), threading.Event()

    def reactor() -> None:
        gate.wait()  # open: the reactor goes on towards get_msg()...
        passed.set()
        resume.wait()  # ...and is preempted right there
        gate.wait()  # next loop: parks behind the closed gate

    threading.Thread(target=reactor, daemon=True).start()
    assert passed.wait(2)
    cleared = threading.Event()
    threading.Thread(target=lambda: (gate.clear(), cleared.set()), daemon=True).start()
    # A plain Event would let the sender go now, and the reactor would steal the response.
    time.sleep(0.2)
    assert not cleared.is_set()
    resume.set()
    assert cleared.wait(2)
    gate.set()


def test_clear_from_the_reactor_thread_does_not_wait() -> None:
    gate = ReactorGate(FakeAssociation())
    done = threading.Event()

    def handler_in_reactor() -> None:
        gate.wait()
        gate.clear()  # a C-GET handler sending C-STOREs from the reactor thread
        done.set()

    threading.Thread(target=handler_in_reactor, daemon=True).start()
    assert done.wait(2)


def test_clear_gives_up_when_the_association_is_gone() -> None:
    association = FakeAssociation()
    association._kill = True
    gate = ReactorGate(association)
    started = time.monotonic()
    gate.clear()
    assert time.monotonic() - started < 1
