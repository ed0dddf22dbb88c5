"""The DIMSE door: which associations are accepted, and which services each may use.

Every accepted association passes `GatedACSE`, installed on EVT_CONN_OPEN before pynetdicom
negotiates: the called AE title must be ours, and the calling AE must be a registered node
connecting from an address it may use — or, for an unregistered AE, the policy
`PACS_DICOM__UNKNOWN_AES` decides: `local` (only from a loopback address: the README's first
`storescu` works, nothing else on the network does), `deny` or `allow`. A refusal is an
A-ASSOCIATE-RJ with its reason (PS3.8 9.3.4: 0x03 calling AE not recognised, 0x07 called AE
not recognised). The accepted association carries its `Grant`; each service handler asks
`permitted` before it does anything, and answers 0x0124 (Refused: not authorised) otherwise.

Over TLS (the TLS port, PS3.15 B.9) a client certificate verified by the handshake names the
AE it speaks for by its subject Common Name: a calling AE title that is not among them is
refused, whatever the registry says. A node registered with `tls: true` is accepted only
that way: over TLS, with a certificate naming it; on the plain port it is refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.acse import ACSE

from infra.audit_recorder import AuditRecorder, dimse_entry
from infra.dicom.statuses import status_dataset
from infra.internal_api import ApiRefused, ApiUnavailable
from infra.settings import RemoteAE, UnknownAePolicy
from infra.tls.peer import PLAIN, TlsPeer, peer_of
from schemas.audit import Outcome
from schemas.nodes import ALL_SERVICES, DimseService, Node
from schemas.security import DimseIdentity, StudyRuleModel

log = logging.getLogger(__name__)

# A-ABORT (PS3.8 9.3.8): source 2, the UL service-provider; reason 6, invalid PDU parameter.
ABORT_UNUSABLE_REQUEST = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 2, 6])

NOT_AUTHORISED = 0x0124  # PS3.7 C.4 general status: Refused, not authorised
REFRESH_SECONDS = 5.0
# A-ASSOCIATE-RJ (result, source, reason): rejected-permanent, DICOM UL service-user.
CALLING_AE_NOT_RECOGNISED = (0x01, 0x01, 0x03)
CALLED_AE_NOT_RECOGNISED = (0x01, 0x01, 0x07)


@dataclass(frozen=True)
class Grant:
    """What one accepted association may do."""

    calling_ae: str
    node: Node | None  # None: an unregistered AE let in by the policy
    services: frozenset[str] = field(default_factory=frozenset)
    # The user the association identified (User Identity Negotiation), if any: the node's
    # services narrowed to what the user's roles permit, reads to the studies in `scope`.
    user: DimseIdentity | None = None

    def may_move_to(self, destination: str) -> bool:
        # An unregistered AE let in (local/allow) may name any destination we know.
        return self.node is None or self.node.may_move_to(destination)


class NodeDirectory:
    """The gateway's copy of the node registry, refreshed from the API every few seconds."""

    def __init__(self, fetch: Callable[[], list[Node]], refresh_seconds: float = REFRESH_SECONDS):
        self._fetch = fetch
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._by_ae: dict[str, Node] = {}
        self._fetched_at = float("-inf")

    def by_ae_title(self, ae_title: str) -> Node | None:
        self._refresh_if_stale()
        with self._lock:
            return self._by_ae.get(ae_title.strip())

    def _refresh_if_stale(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._fetched_at < self._refresh_seconds:
                return
            self._fetched_at = now  # one refresher at a time; the others use what is held
        try:
            nodes = self._fetch()
        except (ApiUnavailable, ApiRefused, ValueError) as exc:
            log.warning("node registry not refreshed (keeping the last copy): %r", exc)
            return
        with self._lock:
            self._by_ae = {node.ae_title: node for node in nodes}


class Destinations:
    """C-MOVE destinations by AE title: registered nodes first, then PACS_DICOM__REMOTE_AES."""

    def __init__(self, directory: NodeDirectory, configured: Callable[[str], RemoteAE | None]):
        self.directory = directory
        self.configured = configured

    def get(self, ae_title: str) -> RemoteAE | None:
        node = self.directory.by_ae_title(ae_title)
        if node is not None:
            return RemoteAE(host=node.host, port=node.port, tls=node.tls)
        return self.configured(ae_title)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Admission(NamedTuple):
    """The door's answer: `reason` None and a grant, or an A-ASSOCIATE-RJ reason and why."""

    reason: tuple[int, int, int] | None
    grant: Grant | None
    why: str


class AccessPolicy:
    def __init__(
        self,
        our_ae_title: str,
        directory: NodeDirectory,
        unknown: UnknownAePolicy,
        recorder: AuditRecorder | None = None,
    ):
        self.our_ae_title = our_ae_title.strip()
        self.directory = directory
        self.unknown = unknown
        # Rejections and refusals are audit entries (action `association` / `denied`).
        self.recorder = recorder

    def admit(
        self, calling_ae: str, called_ae: str, address: str, peer: TlsPeer = PLAIN
    ) -> Admission:
        """Refused (an A-ASSOCIATE-RJ reason and why), or admitted with its grant."""
        calling_ae, called_ae = calling_ae.strip(), called_ae.strip()
        if called_ae != self.our_ae_title:
            return Admission(CALLED_AE_NOT_RECOGNISED, None, "called AE not recognised")
        if peer.certified and calling_ae not in peer.common_names:
            names = ", ".join(sorted(peer.common_names)) or "no common name"
            why = f"client certificate names {names}, not the calling AE"
            return Admission(CALLING_AE_NOT_RECOGNISED, None, why)
        node = self.directory.by_ae_title(calling_ae)
        if node is not None:
            if node.tls and not peer.certified:
                why = "node requires TLS with its client certificate"
                return Admission(CALLING_AE_NOT_RECOGNISED, None, why)
            if not node.connects_from(address):
                return Admission(CALLING_AE_NOT_RECOGNISED, None, "calling AE not recognised")
            return Admission(None, Grant(calling_ae, node, frozenset(node.services)), "")
        if self.unknown == UnknownAePolicy.ALLOW or (
            self.unknown == UnknownAePolicy.LOCAL and _is_loopback(address)
        ):
            return Admission(None, Grant(calling_ae, None, frozenset(ALL_SERVICES)), "")
        return Admission(CALLING_AE_NOT_RECOGNISED, None, "calling AE not recognised")


class GatedACSE(ACSE):
    """pynetdicom's ACSE with our acceptance check in front of its own negotiation."""

    def __init__(self, assoc: Any, policy: AccessPolicy, address: str) -> None:
        super().__init__(assoc)
        self._policy = policy
        self._address = address

    def _negotiate_as_acceptor(self) -> None:
        request: Any = self.requestor.primitive
        calling, called = str(request.calling_ae_title), str(request.called_ae_title)
        sock = self.assoc.dul.socket
        peer = peer_of(sock.socket if sock is not None else None)
        reason, grant, why = self._policy.admit(calling, called, self._address, peer)
        if reason is not None:
            log.warning(
                "association from %s (%s%s) to %s rejected: %s",
                calling.strip(),
                self._address,
                ", TLS" if peer.tls else "",
                called.strip(),
                why,
            )
            if self._policy.recorder is not None:
                self._policy.recorder.record(
                    dimse_entry(
                        "association",
                        "denied",
                        calling.strip(),
                        self._address,
                        f"rejected: {why} (called {called.strip()})",
                    )
                )
            self.requestor.ae_title = request.calling_ae_title
            self.send_reject(*reason)
            evt.trigger(self.assoc, evt.EVT_REJECTED, {})
            self.assoc.kill()
            return
        # pynetdicom's Association has no slots for these: set as plain attributes.
        setattr(self.assoc, "pacs_grant", grant)  # noqa: B010
        setattr(self.assoc, "pacs_audit", self._policy.recorder)  # noqa: B010
        try:
            super()._negotiate_as_acceptor()
        except (TypeError, ValueError) as exc:
            # pynetdicom raises on some request items it decoded but cannot negotiate (a
            # presentation context without an abstract syntax, found by fuzzing) and left
            # the peer unanswered, the thread ending in a traceback.
            log.warning("aborting association: unusable A-ASSOCIATE-RQ: %s", exc)
            # Written directly: an A-ABORT queued for the DUL is dropped by the kill after it.
            sock = self.assoc.dul.socket
            if sock is not None and sock.socket is not None:
                with contextlib.suppress(OSError):
                    sock.socket.sendall(ABORT_UNUSABLE_REQUEST)
            self.assoc.kill()


class AcceptanceHook:
    """Bound to EVT_CONN_OPEN: every accepted association gets the gated ACSE."""

    def __init__(self, policy: AccessPolicy) -> None:
        self.policy = policy

    def __call__(self, event: Any) -> None:
        address = str(event.address[0]) if event.address else ""
        event.assoc.acse = GatedACSE(event.assoc, self.policy, address)


# The permission each DIMSE service needs from an identified user (infra/auth/permissions.py).
SERVICE_PERMISSIONS: dict[str, str | None] = {
    "echo": None,
    "store": "studies:store",
    "commitment": "studies:store",
    "find": "studies:read",
    "move": "studies:read",
    "get": "studies:read",
    "worklist": "worklist:read",
    "mpps": "worklist:write",
}
# PS3.7 D.3.3.7.1 User-Identity-Type: 2 user name and passcode, 5 JWT.
_KINDS = {1: "user name", 2: "user name and passcode", 3: "Kerberos", 4: "SAML", 5: "JWT"}


class UserIdentityCheck:
    """EVT_USER_ID: the user named in the A-ASSOCIATE-RQ is verified by the API (one place
    resolves every credential); the association then acts as that user. A user identity
    that does not verify rejects the association (pynetdicom answers A-ASSOCIATE-RJ
    rejected-transient, ACSE, no reason given), and is an audit entry either way."""

    def __init__(
        self,
        identify: Callable[[int, bytes, bytes], DimseIdentity | None],
        recorder: AuditRecorder | None = None,
    ) -> None:
        self.identify = identify
        self.recorder = recorder

    def __call__(self, event: Any) -> tuple[bool, bytes | None]:
        assoc = event.assoc
        kind = int(event.user_id_type)
        calling = assoc.requestor.ae_title.strip()
        address = str(assoc.requestor.address)
        try:
            identity = self.identify(kind, event.primary_field or b"", event.secondary_field or b"")
        except (ApiUnavailable, ApiRefused) as exc:
            log.warning("user identity of %s not verified: %r", calling, exc)
            identity = None
        grant = grant_of(assoc)
        if identity is None or grant is None:
            # Like a failed login over HTTP, the entry names the user name tried.
            tried = (event.primary_field or b"").decode("utf-8", "replace") if kind < 3 else ""
            why = f"{_KINDS.get(kind, kind)} not verified"
            self._audit("failure", calling, address, why, tried[:64])
            return False, None
        allowed = set(identity.permissions)
        services = frozenset(
            s
            for s in grant.services
            if (need := SERVICE_PERMISSIONS.get(s)) is None or need in allowed
        )
        setattr(assoc, "pacs_grant", replace(grant, services=services, user=identity))  # noqa: B010
        self._audit("success", calling, address, _KINDS.get(kind, str(kind)), identity.name)
        # No positive response item: we have no server token to give (PS3.7 D.3.3.7.2
        # lets an acceptor accept without one).
        return True, None

    def _audit(
        self, outcome: Outcome, calling: str, address: str, detail: str, user: str = ""
    ) -> None:
        if self.recorder is not None:
            self.recorder.record(
                dimse_entry("login", outcome, calling, address, f"DIMSE {detail}", user)
            )


def user_of(assoc: Any) -> DimseIdentity | None:
    grant = grant_of(assoc)
    return grant.user if grant is not None else None


def user_name(assoc: Any) -> str:
    user = user_of(assoc)
    return user.name if user is not None else ""


def scope_of(assoc: Any) -> list[StudyRuleModel] | None:
    """The studies this association may read (None: every one)."""
    user = user_of(assoc)
    return user.scope if user is not None else None


def grant_of(assoc: Any) -> Grant | None:
    grant: Grant | None = getattr(assoc, "pacs_grant", None)
    return grant


def permitted(assoc: Any, service: DimseService) -> bool:
    """The one check: may this association use `service`? (No grant: it was never admitted.)"""
    grant = grant_of(assoc)
    return grant is not None and service in grant.services


def refused(service: str, assoc: Any) -> Dataset:
    title = assoc.requestor.ae_title.strip() if assoc is not None else "?"
    log.warning("%s from %s refused: not permitted for this AE", service, title)
    recorder: AuditRecorder | None = getattr(assoc, "pacs_audit", None)
    if recorder is not None:
        address = str(assoc.requestor.address)
        why = f"{service} not permitted"
        recorder.record(dimse_entry("denied", "denied", title, address, why, user_name(assoc)))
    return status_dataset(NOT_AUTHORISED, f"{service} is not permitted for AE {title}")


def guarded(service: DimseService, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`handler` behind the check, for handlers that answer with a status: C-ECHO and
    C-STORE (a status), N-CREATE/N-SET/N-ACTION (a status and a dataset)."""
    pair = service not in ("echo", "store")

    def check(event: Any) -> Any:
        if permitted(event.assoc, service):
            return handler(event)
        answer = refused(service, event.assoc)
        return (answer, None) if pair else answer

    return check


def guarded_find(service: DimseService, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The same for C-FIND handlers (they yield (status, identifier) pairs)."""

    def check(event: Any) -> Iterator[Any]:
        if not permitted(event.assoc, service):
            return iter([(refused(service, event.assoc), None)])
        result: Iterator[Any] = handler(event)
        return result

    return check


def guarded_get(handler: Callable[[Any], Iterator[Any]]) -> Callable[[Any], Iterator[Any]]:
    """C-GET: pynetdicom takes a status only after a sub-operation count."""

    def check(event: Any) -> Iterator[Any]:
        if permitted(event.assoc, "get"):
            yield from handler(event)
            return
        yield 1
        yield refused("get", event.assoc), None

    return check


def guarded_move(handler: Callable[[Any], Iterator[Any]]) -> Callable[[Any], Iterator[Any]]:
    """C-MOVE: the move service and the destination must both be permitted. pynetdicom can
    answer a C-MOVE before it has a destination only with 0xA801 (Move Destination unknown):
    a destination this AE may not name is, to it, unknown."""

    def check(event: Any) -> Iterator[Any]:
        grant = grant_of(event.assoc)
        destination = str(event.move_destination or "").strip()
        if grant is None or "move" not in grant.services or not grant.may_move_to(destination):
            log.warning(
                "C-MOVE from %s to %r refused: not permitted for this AE",
                event.assoc.requestor.ae_title.strip(),
                destination,
            )
            yield None, None
            return
        yield from handler(event)

    return check
