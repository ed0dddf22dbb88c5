"""Query/Retrieve C-FIND answered on an event-driven association without pynetdicom's
C-FIND service class.

pynetdicom still receives and decodes the request, negotiates, fragments nothing we send
beyond its own P-DATA primitives and runs the state machine; what is skipped is the part
that cost most of the gateway's CPU per C-FIND (profiled with py-spy --gil at 1M
instances): a pydicom Dataset per response, its validation and encoding, and pynetdicom's
DIMSE message object that encodes each command set twice. Here each pending response is
the command set and identifier written as bytes (ingest/dimse/identifier_bytes.py) and sent as
one P-DATA PDU where it fits the peer's maximum PDU length.

Anything unusual goes back to pynetdicom's own path, before a byte is sent: a transfer
syntax other than implicit/explicit VR little endian, an identifier that does not decode,
a SOP class the direct handler does not answer (Modality Worklist). Final statuses other
than success (refusals, cancel, failure) are rare and go through pynetdicom's send_msg.
"""

from __future__ import annotations

import logging
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import QueryRetrieveServiceClass

from infra.dicom.statuses import PENDING, SUCCESS
from ingest.dimse.access import permitted
from ingest.dimse.find import FindHandler, response_identifier
from ingest.dimse.identifier_bytes import command_set_bytes, identifier_bytes
from ingest.dimse.observed import direct_find_answered

log = logging.getLogger(__name__)

C_FIND_RSP = 0x8020
DATASET_PRESENT = 0x0001  # as pynetdicom writes it; anything but 0x0101 means a dataset follows
NO_DATASET = 0x0101
PROCESSING_FAILURE = 0xC311  # pynetdicom's status for an exception in the handler
_PDV_HEADER = 6  # item length (4), presentation context ID (1), control header (1)


def _pdvs(context_id: int, control: int, data: bytes, max_pdu: int) -> list[tuple[int, bytes]]:
    """`data` as PDVs that each fit a PDU of `max_pdu` (0: no limit); the last fragment
    carries the 'last' bit (PS3.8 E.2)."""
    size = len(data) if max_pdu == 0 else max(1, max_pdu - _PDV_HEADER)
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    last = len(chunks) - 1
    return [
        (context_id, bytes([control | (2 if i == last else 0)]) + chunk)
        for i, chunk in enumerate(chunks)
    ]


def _wait_taken(assoc: Any) -> None:
    """Wait until the DUL thread has taken what we queued. Writing responses far ahead of
    the socket would hold a whole result set in memory and answer a C-CANCEL only once
    everything was sent; one response in flight lets the DUL look for incoming PDUs
    (ingest/dimse/reactor.py reads before sending again) between two responses, as DCMTK
    checks for a C-CANCEL before each."""
    outgoing = assoc.dul.to_provider_queue
    with outgoing.not_full:  # Queue.get() notifies it for every item taken
        while outgoing.queue and assoc.is_established and assoc.dul.is_alive():
            outgoing.not_full.wait(0.05)


class DirectFind:
    """Serves C-FIND requests whose SOP class is routed to a FindHandler."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        # The gateway's FindRouter table: SOP class UID -> handler.
        self.handlers = handlers

    def serve(self, assoc: Any, msg: Any, context_id: int) -> bool:
        """Answer `msg` and return True, or return False (nothing sent) for pynetdicom."""
        if not isinstance(msg, C_FIND) or not msg.is_valid_request or assoc._sent_release:
            return False
        sop_class = str(msg.AffectedSOPClassUID)
        handler = self.handlers.get(sop_class)
        context = assoc._accepted_cx.get(context_id)
        if not isinstance(handler, FindHandler) or context is None:
            return False
        if not permitted(assoc, "find"):
            return False  # pynetdicom's path answers it: FindRouter refuses with 0x0124
        syntax = context.transfer_syntax[0]
        if syntax not in (ImplicitVRLittleEndian, ExplicitVRLittleEndian):
            return False
        explicit = syntax == ExplicitVRLittleEndian
        if msg.Identifier is None:
            return False
        try:
            identifier = decode(msg.Identifier, not explicit, True)
        except Exception:  # noqa: BLE001 - pydicom raises many kinds for bad bytes
            return False  # pynetdicom answers "unable to decode"
        dimse = assoc.dimse
        dimse.cancel_req = {}
        # A handler may not call send_*() here, but keep pynetdicom's contract that the
        # reactor counts as paused while a request is served.
        assoc._is_paused = True
        try:
            self._respond(assoc, msg, context_id, sop_class, handler, identifier, explicit)
        finally:
            assoc._is_paused = False
            dimse.cancel_req = {}
        return True

    def _respond(
        self,
        assoc: Any,
        msg: Any,
        context_id: int,
        sop_class: str,
        handler: FindHandler,
        identifier: Dataset,
        explicit: bool,
    ) -> None:
        message_id = int(msg.MessageID)
        cancel_req = assoc.dimse.cancel_req
        try:
            for status, match, level in handler.answer(
                identifier, sop_class, lambda: message_id in cancel_req, assoc
            ):
                if not assoc.is_established:
                    return
                if match is None:
                    self._send_status(assoc, msg, context_id, status)
                    return
                body = identifier_bytes(identifier, match, level, explicit)
                if body is None:
                    found = response_identifier(identifier, match, level)
                    body = encode(found, not explicit, True)
                self._send(assoc, context_id, sop_class, message_id, PENDING, body)
                _wait_taken(assoc)
        except Exception:
            log.exception("C-FIND failed")
            if assoc.is_established:
                self._send_status(assoc, msg, context_id, PROCESSING_FAILURE)
            return
        if assoc.is_established:
            self._send(assoc, context_id, sop_class, message_id, SUCCESS, None)
            direct_find_answered(assoc)

    @staticmethod
    def _send(
        assoc: Any,
        context_id: int,
        sop_class: str,
        message_id: int,
        status: int,
        body: bytes | None,
    ) -> None:
        command = command_set_bytes(
            [
                (0x00000002, "UI", sop_class),
                (0x00000100, "US", C_FIND_RSP),
                (0x00000120, "US", message_id),
                (0x00000800, "US", NO_DATASET if body is None else DATASET_PRESENT),
                (0x00000900, "US", status),
            ]
        )
        max_pdu = int(assoc.dimse.maximum_pdu_size or 0)
        pdvs = _pdvs(context_id, 1, command, max_pdu)
        if body is not None:
            pdvs += _pdvs(context_id, 0, body, max_pdu)
        together = sum(_PDV_HEADER - 1 + len(data) for _, data in pdvs)  # data has its header
        if max_pdu == 0 or together <= max_pdu:
            pdata = P_DATA()
            # Appended, as pynetdicom does: its setter wants lists, its sender tuples.
            pdata.presentation_data_value_list.extend(pdvs)
            assoc.dul.send_pdu(pdata)
            return
        for pdv in pdvs:
            pdata = P_DATA()
            pdata.presentation_data_value_list.append(pdv)
            assoc.dul.send_pdu(pdata)

    @staticmethod
    def _send_status(assoc: Any, msg: Any, context_id: int, status: Any) -> None:
        """A final status (refusal, cancel, failure) through pynetdicom, which turns a
        status Dataset's ErrorComment and the like into command elements."""
        rsp = C_FIND()
        rsp.MessageIDBeingRespondedTo = msg.MessageID
        rsp.AffectedSOPClassUID = msg.AffectedSOPClassUID
        rsp = QueryRetrieveServiceClass(assoc).validate_status(status, rsp)
        assoc.dimse.send_msg(rsp, context_id)
