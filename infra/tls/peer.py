"""Who a verified TLS client certificate speaks for."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TlsPeer:
    """The transport of one connection: TLS or not, and the subject Common Names of the
    client certificate the handshake verified (empty: none was presented)."""

    tls: bool = False
    certified: bool = False
    common_names: frozenset[str] = frozenset()


PLAIN = TlsPeer()


def peer_of(sock: Any) -> TlsPeer:
    """The TlsPeer of a connected socket (plain socket: PLAIN). `getpeercert()` returns a
    certificate only when the handshake verified it (CERT_OPTIONAL/REQUIRED): an unverified
    one never completes the handshake."""
    if not isinstance(sock, ssl.SSLSocket):
        return PLAIN
    cert = sock.getpeercert()
    if not cert:
        return TlsPeer(tls=True)
    subject: Any = cert.get("subject", ())  # ((("commonName", "WS1"),), ...)
    names = frozenset(
        str(value).strip() for rdn in subject for key, value in rdn if key == "commonName"
    )
    return TlsPeer(tls=True, certified=True, common_names=names)
