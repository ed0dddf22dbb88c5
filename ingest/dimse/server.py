"""DIMSE gateway: C-ECHO, C-STORE for every storage SOP class and transfer syntax, C-FIND
(query/retrieve and Modality Worklist), C-MOVE and C-GET (Patient Root and Study Root), MPPS
N-CREATE/N-SET, Storage Commitment N-ACTION."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import ssl
import threading
from typing import Any

from pydicom.uid import AllTransferSyntaxes, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config, evt
from pynetdicom.presentation import AllStoragePresentationContexts, PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    StorageCommitmentPushModel,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from infra.audit_recorder import AuditRecorder, dimse_entry
from infra.dicom.statuses import IDENTIFIER_MISMATCH, status_dataset
from infra.dicom.transfer_syntaxes import NATIVE_SYNTAXES
from infra.dimse.nodelay import set_nodelay
from infra.dimse.reactor_gate import guard_reactor
from infra.settings import DicomSettings
from ingest.accept import Acceptor, Origin
from ingest.dimse.access import AcceptanceHook, AccessPolicy, guarded_find
from ingest.dimse.find import FIND_SOP_CLASSES
from ingest.dimse.find_responder import DirectFind
from ingest.dimse.reactor import EventDrivenReactors
from ingest.dimse.retrieve import GET_MODELS, MOVE_MODELS
from schemas.nodes import DimseService

log = logging.getLogger(__name__)

# A TLS peer gets this long to finish its handshake.
HANDSHAKE_SECONDS = 30.0

# Newer syntaxes pydicom does not list yet; we store bytes as sent, so we need no codec.
_NEWER_SYNTAXES = [
    "1.2.840.10008.1.2.4.110",  # JPEG XL Lossless
    "1.2.840.10008.1.2.4.111",  # JPEG XL JPEG Recompression
    "1.2.840.10008.1.2.4.112",  # JPEG XL
    "1.2.840.10008.1.2.8.1",  # Deflated Image Frame Compression
    "1.2.840.10008.1.2.4.94",  # JPIP Referenced
    "1.2.840.10008.1.2.4.95",  # JPIP Referenced Deflate
]
# pynetdicom accepts the first of OUR syntaxes that a proposed context lists, so the order is
# our preference: Explicit VR LE first keeps VRs (pydicom lists Implicit first), which
# matters when a C-GET requestor offers both for the objects we send it.
_PREFERRED = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
TRANSFER_SYNTAXES = (
    _PREFERRED
    + [str(uid) for uid in AllTransferSyntaxes if uid not in _PREFERRED]
    + [uid for uid in _NEWER_SYNTAXES if uid not in AllTransferSyntaxes]
)


class StoreHandler:
    """C-STORE: hands the received bytes, unchanged, to the accept path."""

    def __init__(self, acceptor: Acceptor) -> None:
        self.acceptor = acceptor

    def __call__(self, event: Any) -> Any:
        # The preamble and File Meta are built from the presentation context, so the
        # dataset bytes stay exactly as the modality encoded them.
        part10 = event.encoded_dataset(include_meta=True)
        calling_ae = event.assoc.requestor.ae_title.strip()
        address = event.assoc.requestor.address
        outcome = self.acceptor.accept_blocking(
            part10, Origin(via="dimse", calling_ae=calling_ae, client=address)
        )
        if not outcome.ok:
            log.warning(
                "C-STORE from %s refused with 0x%04X: %s",
                calling_ae,
                outcome.status,
                outcome.reason,
            )
        return status_dataset(outcome.status, outcome.reason)


def build_ae(settings: DicomSettings) -> AE:
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    ae.maximum_pdu_size = settings.max_pdu_size
    ae.network_timeout = settings.network_timeout_seconds
    ae.acse_timeout = 30
    ae.dimse_timeout = settings.network_timeout_seconds
    ae.require_called_aet = False
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    for model in (*MOVE_MODELS, *GET_MODELS):
        ae.add_supported_context(model, TRANSFER_SYNTAXES)
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None
        # Role selection accepted as proposed: a C-GET requestor asks to be the Storage
        # SCP on the same association (PS3.4 C.4.3, PS3.7 D.3.3.4).
        ae.add_supported_context(
            context.abstract_syntax, TRANSFER_SYNTAXES, scu_role=True, scp_role=True
        )
    for sop_class in FIND_SOP_CLASSES:
        ae.add_supported_context(sop_class, TRANSFER_SYNTAXES)
    # Worklist queries and N-services carry small datasets: the uncompressed syntaxes suffice.
    for sop_class in (
        ModalityWorklistInformationFind,
        ModalityPerformedProcedureStep,
        StorageCommitmentPushModel,
    ):
        ae.add_supported_context(sop_class, list(NATIVE_SYNTAXES))
    return ae


class FindRouter:
    """EVT_C_FIND is one event for every information model: route by the SOP class asked,
    each behind the permission of its service (Q/R `find`, Modality Worklist `worklist`)."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.services: dict[str, DimseService] = {}

    def add(self, sop_class_uid: str, handler: Any, service: DimseService = "find") -> None:
        self.handlers[sop_class_uid] = handler
        self.services[sop_class_uid] = service

    def __call__(self, event: Any) -> Any:
        sop_class = str(event.request.AffectedSOPClassUID)
        handler = self.handlers.get(sop_class)
        if handler is None:
            return iter([(IDENTIFIER_MISMATCH, None)])
        return guarded_find(self.services[sop_class], handler)(event)


class SharedSyntaxContext(PresentationContext):
    """pynetdicom deep-copies the server's supported contexts (about 190, each listing about
    40 transfer syntaxes) for every association it accepts. The UIDs are immutable strings:
    copying the lists gives the same result without deep-copying ~7,000 UID objects."""

    @classmethod
    def of(cls, context: PresentationContext) -> SharedSyntaxContext:
        twin = cls()
        twin.__dict__.update(context.__dict__)
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedSyntaxContext:
        twin = self.of(self)
        twin._transfer_syntax = list(self._transfer_syntax)
        return twin


def bound_reads(client: socket.socket, seconds: float | None) -> None:
    """Give an accepted socket the network timeout, so no read or write waits longer.

    Python hands accepted sockets over blocking with no timeout, and pynetdicom reads a
    PDU's body in a blocking loop: a peer that announced a PDU and stopped sending held its
    association thread (and a place under max_associations) forever. Found by fuzzing
    (tests/unit/ingest/dimse/test_fuzz_pdus.py)."""
    client.settimeout(seconds)


def _guard(event: Any) -> None:
    guard_reactor(event.assoc)


class SharedPortServer(ThreadedAssociationServer):
    """Several gateway processes listen on one port (SO_REUSEPORT) and the kernel spreads
    associations over them: pynetdicom holds the GIL for much of each C-STORE, so one
    process cannot use more than about one core."""

    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client, address = super().get_request()
        bound_reads(client, self.ae.network_timeout)
        return client, address


class TlsPortServer(SharedPortServer):
    """The TLS port (PS3.15 B.9). pynetdicom wraps an accepted socket in its acceptor thread,
    where the handshake would run too: one peer that connects and says nothing would hold up
    every other connection. Here the handshake runs in the connection's own thread, bounded
    by HANDSHAKE_SECONDS; a peer that fails it (an untrusted or missing certificate) is
    logged, audited (action `association`, outcome `denied`) and closed before any
    association exists."""

    # Set by start_gateway: where refused handshakes are recorded.
    recorder: AuditRecorder | None = None

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None and self.ssl_context is not None
        client, address = self.socket.accept()
        bound_reads(client, self.ae.network_timeout)
        wrapped = self.ssl_context.wrap_socket(
            client, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        timeout = request.gettimeout()
        try:
            request.settimeout(HANDSHAKE_SECONDS)
            request.do_handshake()
            request.settimeout(timeout)
        except (OSError, ssl.SSLError) as exc:
            address = str(client_address[0])
            log.warning("TLS handshake with %s failed: %s", address, exc)
            if self.recorder is not None:
                reason = getattr(exc, "reason", None) or type(exc).__name__
                entry = dimse_entry(
                    "association", "denied", "", address, f"TLS handshake failed: {reason}"
                )
                self.recorder.record(entry)
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)


def skip_unlogged_formatting() -> None:
    """pynetdicom decodes and pretty-prints every C-FIND/C-MOVE/C-GET identifier and formats
    every PDU for its standard log handlers even when its logger discards INFO (as the
    gateway's does): about 1 ms of each C-FIND. Kept on when someone turned its logging up."""
    if not logging.getLogger("pynetdicom").isEnabledFor(logging.INFO):
        _config.LOG_HANDLER_LEVEL = "none"
        _config.LOG_REQUEST_IDENTIFIERS = False
        _config.LOG_RESPONSE_IDENTIFIERS = False


def start_gateway(
    settings: DicomSettings,
    handlers: list[Any],
    policy: AccessPolicy,
    find: FindRouter | None = None,
    tls: ssl.SSLContext | None = None,
) -> ThreadedAssociationServer:
    """Start listening with `handlers` (plus TCP_NODELAY); associations get their own threads.
    Every association passes `policy` first (ingest/dimse/access.py): there is no gateway
    without its door.
    Query/Retrieve C-FIND requests routed by `find` are answered directly (see
    ingest/dimse/find_responder.py) on event-driven associations.
    With `tls`, the listener is the TLS port (`tls_host`:`tls_port`) serving that context."""
    skip_unlogged_formatting()
    ae = build_ae(settings)
    # The gate matters where another thread sends on an association we accepted (e.g. a
    # storage commitment report on the requester's association).
    reactor: list[Any] = []
    if settings.event_driven_reactor:
        direct = DirectFind(find.handlers) if find is not None else None
        reactor = [(evt.EVT_CONN_OPEN, EventDrivenReactors(direct))]
    handlers = [
        (evt.EVT_CONN_OPEN, set_nodelay),
        (evt.EVT_CONN_OPEN, AcceptanceHook(policy)),
        *reactor,
        (evt.EVT_ACCEPTED, _guard),
        *handlers,
    ]
    if tls is None:
        address, server_class, kind = (settings.host, settings.port), SharedPortServer, "DICOM"
    else:
        address = (settings.tls_host or settings.host, settings.tls_port)
        server_class, kind = TlsPortServer, "DICOM TLS"
    server = ae.make_server(
        address, evt_handlers=handlers, server_class=server_class, ssl_context=tls
    )
    server.contexts = [SharedSyntaxContext.of(context) for context in server.contexts]
    if isinstance(server, TlsPortServer):
        server.recorder = policy.recorder
    # pynetdicom runs a full gc.collect() every 60 passes of its accept loop (each accepted
    # association, or every 30 s idle): ~85 ms holding the GIL, stalling every association.
    # Everything loaded so far lives as long as the process; freezing it leaves those
    # collections only the objects made since.
    gc.collect()  # start-up garbage first: frozen objects are never collected
    gc.freeze()
    threading.Thread(target=server.serve_forever, name="dimse-acceptor", daemon=True).start()
    host, port = server.server_address[:2]
    log.info("%s %s listening on %s:%d", kind, settings.ae_title, host, port)
    return server


async def serve_until(
    stop: asyncio.Event,
    settings: DicomSettings,
    handlers: list[Any],
    policy: AccessPolicy,
    find: FindRouter | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    """The plain port, and the TLS port too when a `tls` context is given (and its port is
    not 0), until `stop` is set."""
    servers = [start_gateway(settings, handlers, policy, find)]
    try:
        if tls is not None and settings.tls_port:
            servers.append(start_gateway(settings, handlers, policy, find, tls))
        await stop.wait()
    finally:
        for server in servers:
            await asyncio.to_thread(_shutdown, server)


def _shutdown(server: ThreadedAssociationServer) -> None:
    # pynetdicom unregisters the server from its AE, where only start_server (not
    # make_server) registered it: ValueError comes after everything is already shut down.
    with contextlib.suppress(ValueError):
        server.shutdown()
