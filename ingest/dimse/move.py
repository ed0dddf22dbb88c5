"""C-MOVE SCP (Patient Root and Study Root): C-STORE sub-operations to a known remote AE."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from typing import Any, Protocol

from pynetdicom import evt
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    SecondaryCaptureImageStorage,
    Verification,
)

from infra.audit_recorder import AuditRecorder
from infra.dicom.statuses import status_dataset
from infra.dimse.nodelay import set_nodelay
from infra.dimse.reactor_gate import guard_reactor
from infra.dimse.sending import accepted_syntaxes
from infra.dimse.store_contexts import UNCOMPRESSED, store_contexts
from infra.settings import RemoteAE
from ingest.dimse.retrieve import (
    RetrieveError,
    RetrieveSource,
    audit_retrieve,
    find_instances,
    request_identifier,
    sub_operations,
)

log = logging.getLogger(__name__)

# For refusing a bad identifier: contexts any storage SCP accepts at least one of.
_PROBE_CONTEXTS = [
    build_context(Verification),
    build_context(CTImageStorage, list(UNCOMPRESSED)),
    build_context(SecondaryCaptureImageStorage, list(UNCOMPRESSED)),
]


class _StoreLink:
    """Catches the sub-operation association pynetdicom opens, to see what it accepted."""

    def __init__(self, originator: str) -> None:
        self.assoc: Any = None
        self.originator = originator

    def accepted(self, event: Any) -> None:
        assoc = event.assoc
        guard_reactor(assoc)
        # pynetdicom names itself as the Move Originator; PS3.7 9.3.1.1 wants the AE that
        # asked for the C-MOVE, which receivers log and route by.
        send = assoc.send_c_store

        def send_for_originator(dataset: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["originator_aet"] = self.originator
            return send(dataset, *args, **kwargs)

        assoc.send_c_store = send_for_originator
        self.assoc = assoc

    def syntaxes(self, sop_class: str) -> list[str]:
        return accepted_syntaxes(self.assoc, sop_class) if self.assoc is not None else []


class DestinationLookup(Protocol):
    """Where an AE title is (a dict of RemoteAE works, as does access.Destinations)."""

    def get(self, ae_title: str, /) -> RemoteAE | None: ...


class MoveHandler:
    """EVT_C_MOVE: yields the destination, the sub-operation count, then each dataset."""

    def __init__(
        self,
        remote_aes: DestinationLookup,
        source: RetrieveSource,
        recorder: AuditRecorder | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.remote_aes = remote_aes
        self.source = source
        self.recorder = recorder
        # How we connect to a destination whose port speaks TLS (RemoteAE.tls).
        self.tls = tls

    def _connect_options(self, remote: RemoteAE) -> dict[str, Any]:
        return {"tls_args": (self.tls, remote.host)} if remote.tls else {}

    def __call__(self, event: Any) -> Iterator[Any]:
        destination = str(event.move_destination or "").strip()
        calling_ae = event.assoc.requestor.ae_title.strip()
        remote = self.remote_aes.get(destination)
        if remote is None:
            log.warning("C-MOVE from %s to unknown AE %r refused", calling_ae, destination)
            yield None, None  # pynetdicom answers 0xA801 Move Destination Unknown
            return
        if remote.tls and self.tls is None:
            # Never in clear text to a TLS port; without a certificate there is no other way.
            log.warning(
                "C-MOVE from %s to %s refused: the destination needs TLS and this node has "
                "no certificate (pacs certs init)",
                calling_ae,
                destination,
            )
            yield None, None
            return
        identifier = request_identifier(event)
        try:
            instances = find_instances(
                self.source, identifier, str(event.context.abstract_syntax), event.assoc
            )
        except RetrieveError as error:
            log.warning(
                "C-MOVE from %s refused with 0x%04X: %s", calling_ae, error.status, error.reason
            )
            reason = f"0x{error.status:04X} {error.reason}"
            audit_retrieve(self.recorder, "c-move", event.assoc, [], reason, destination)
            # pynetdicom takes a status only after the destination and a count: the
            # association it opens meanwhile is released unused.
            probe = {"contexts": _PROBE_CONTEXTS, **self._connect_options(remote)}
            yield remote.host, remote.port, probe
            yield 1
            yield status_dataset(error.status, error.reason), None
            return
        log.info(
            "C-MOVE from %s: %d instances to %s (%s:%d)",
            calling_ae,
            len(instances),
            destination,
            remote.host,
            remote.port,
        )
        audit_retrieve(self.recorder, "c-move", event.assoc, instances, "", destination)
        link = _StoreLink(originator=calling_ae)
        yield (
            remote.host,
            remote.port,
            {
                "contexts": store_contexts(
                    (i.sop_class_uid, i.transfer_syntax_uid) for i in instances
                ),
                "evt_handlers": [
                    (evt.EVT_CONN_OPEN, set_nodelay),
                    (evt.EVT_ACCEPTED, link.accepted),
                ],
                **self._connect_options(remote),
            },
        )
        yield len(instances)
        with self.source.leased(instances, f"c-move:{calling_ae}"):
            yield from sub_operations(
                instances, self.source.load, link.syntaxes, lambda: bool(event.is_cancelled)
            )
