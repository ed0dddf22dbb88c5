"""Send one fuzz input to a DICOM acceptor over a raw socket and classify what came back."""

from __future__ import annotations

import socket
import time

# PDU types an acceptor may answer with (PS3.8 9.3.1): A-ASSOCIATE-AC (a mutation that
# left the request valid), A-ASSOCIATE-RJ, A-ABORT. Anything else is a wrong answer.
ANSWERS = {0x02: "associate-ac", 0x03: "associate-rj", 0x07: "abort"}


def send_one(port: int, data: bytes, timeout: float = 10.0) -> tuple[str, float]:
    """(outcome, seconds until the acceptor closed): outcome is `closed` (no answer), one of
    ANSWERS' values, `unexpected-0xNN`, or `hang` when it neither answered nor closed.

    The write side is shut after sending, as a peer that has nothing more to say; an
    acceptor waiting for the rest of a PDU then sees the end of the stream."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as peer:
        try:
            peer.sendall(data)
            peer.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the acceptor already closed: fine, what matters is what it said
        answer = b""
        try:
            while chunk := peer.recv(65536):
                answer += chunk
        except TimeoutError:
            return "hang", time.monotonic() - started
        except OSError:
            pass  # reset by the acceptor after its answer
    elapsed = time.monotonic() - started
    if not answer:
        return "closed", elapsed
    return ANSWERS.get(answer[0], f"unexpected-0x{answer[0]:02X}"), elapsed
