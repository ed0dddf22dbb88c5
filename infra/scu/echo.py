"""C-ECHO: is the peer there and does it speak DICOM with us?"""

from __future__ import annotations

import time

from pynetdicom.presentation import build_context
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from infra.scu.peer import Peer, ScuError, associate


def echo(peer: Peer) -> float:
    """Round-trip time in seconds of one C-ECHO; ScuError when it does not succeed."""
    assoc = associate(peer, [build_context(Verification)])
    try:
        started = time.perf_counter()
        status = assoc.send_c_echo()
        elapsed = time.perf_counter() - started
    finally:
        if assoc.is_established:
            assoc.release()
    if "Status" not in status:
        raise ScuError(f"{peer} sent no C-ECHO response (association lost)")
    if status.Status != 0x0000:
        raise ScuError(f"{peer} answered C-ECHO with status 0x{status.Status:04X}")
    return elapsed
