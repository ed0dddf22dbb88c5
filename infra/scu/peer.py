"""Opening an association to a remote AE, with an error that says why it failed."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import PresentationContext

from infra.dimse.nodelay import set_nodelay
from infra.dimse.reactor_gate import guard_reactor
from schemas.nodes import Node


class ScuError(Exception):
    """The peer could not be reached, refused us, or aborted: `reason` is for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AssociationError(ScuError):
    """No association: unreachable, rejected, or aborted while negotiating."""


@dataclass(frozen=True)
class Peer:
    """A remote AE and how we introduce ourselves to it."""

    host: str
    port: int
    ae_title: str = "ANY-SCP"
    calling_ae_title: str = "PACS-CLI"
    timeout: float = 30.0
    # TLS (the peer's TLS port): the context to connect with; None = plain TCP.
    tls: ssl.SSLContext | None = None

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    @classmethod
    def of_node(
        cls, node: Node, calling_ae_title: str, timeout: float, tls: ssl.SSLContext | None
    ) -> Peer:
        """A registered node as we call it: over TLS (with `tls`) when it says so."""
        return cls(
            host=node.host,
            port=node.port,
            ae_title=node.ae_title,
            calling_ae_title=calling_ae_title,
            timeout=timeout,
            tls=tls if node.tls else None,
        )


class _Negotiation:
    """Remembers whether TCP connected and what the peer answered, to explain a failure."""

    def __init__(self) -> None:
        self.connected = False
        self.rejection = ""

    def on_open(self, event: Any) -> None:
        self.connected = True
        set_nodelay(event)

    def on_acse(self, event: Any) -> None:
        primitive = event.primitive
        if isinstance(primitive, A_ASSOCIATE) and primitive.result not in (None, 0x00):
            kind = "permanently" if primitive.result == 0x01 else "for now"
            self.rejection = (
                f"rejected {kind} by the {primitive.source_str.lower()}: {primitive.reason_str}"
            )


def associate(
    peer: Peer,
    contexts: Sequence[PresentationContext],
    *,
    ext_neg: list[Any] | None = None,
    handlers: list[Any] | None = None,
) -> Association:
    """An established association, or ScuError naming what went wrong."""
    ae = AE(ae_title=peer.calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = peer.timeout
    ae.connection_timeout = peer.timeout
    ae.maximum_pdu_size = 0
    negotiation = _Negotiation()
    assoc = ae.associate(
        peer.host,
        peer.port,
        contexts=list(contexts),
        ae_title=peer.ae_title,
        ext_neg=ext_neg,
        tls_args=(peer.tls, peer.host) if peer.tls is not None else None,
        evt_handlers=[
            (evt.EVT_CONN_OPEN, negotiation.on_open),
            (evt.EVT_ACSE_RECV, negotiation.on_acse),
            *(handlers or []),
        ],
    )
    if assoc.is_established:
        guard_reactor(assoc)
        if not assoc.accepted_contexts:
            assoc.abort()
            raise AssociationError(f"{peer} accepted none of the proposed presentation contexts")
        return assoc
    if not negotiation.connected and peer.tls is not None:
        raise AssociationError(
            f"no TLS connection to {peer.host}:{peer.port} (refused, unreachable, or the "
            "handshake failed: is it a TLS port, and do we trust its certificate?)"
        )
    if not negotiation.connected:
        raise AssociationError(
            f"cannot connect to {peer.host}:{peer.port} (refused or unreachable)"
        )
    if assoc.is_rejected:
        raise AssociationError(f"{peer}: association {negotiation.rejection or 'rejected'}")
    raise AssociationError(
        f"{peer} aborted the association or did not answer within {peer.timeout:g}s"
    )
