"""TCP_NODELAY on every DIMSE socket, ours or a peer's association alike."""

from __future__ import annotations

import socket
from typing import Any


def set_nodelay(event: Any) -> None:
    """Bound to EVT_CONN_OPEN: without TCP_NODELAY every DIMSE message waits ~40 ms for
    delayed ACKs."""
    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
