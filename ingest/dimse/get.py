"""C-GET SCP (Patient Root and Study Root): C-STORE sub-operations on the same association,
over the storage contexts the requestor negotiated with the SCP role (PS3.4 C.4.3)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from infra.audit_recorder import AuditRecorder
from infra.dicom.statuses import status_dataset
from infra.dimse.sending import accepted_syntaxes
from ingest.dimse.retrieve import (
    RetrieveError,
    RetrieveSource,
    audit_retrieve,
    find_instances,
    request_identifier,
    sub_operations,
)

log = logging.getLogger(__name__)


class GetHandler:
    """EVT_C_GET: yields the sub-operation count, then each dataset."""

    def __init__(self, source: RetrieveSource, recorder: AuditRecorder | None = None) -> None:
        self.source = source
        self.recorder = recorder

    def __call__(self, event: Any) -> Iterator[Any]:
        assoc = event.assoc
        calling_ae = assoc.requestor.ae_title.strip()
        identifier = request_identifier(event)
        try:
            instances = find_instances(
                self.source, identifier, str(event.context.abstract_syntax), event.assoc
            )
        except RetrieveError as error:
            log.warning(
                "C-GET from %s refused with 0x%04X: %s", calling_ae, error.status, error.reason
            )
            audit_retrieve(
                self.recorder, "c-get", assoc, [], f"0x{error.status:04X} {error.reason}"
            )
            yield 1
            yield status_dataset(error.status, error.reason), None
            return
        log.info("C-GET from %s: %d instances", calling_ae, len(instances))
        audit_retrieve(self.recorder, "c-get", assoc, instances)
        yield len(instances)
        with self.source.leased(instances, f"c-get:{calling_ae}"):
            yield from sub_operations(
                instances,
                self.source.load,
                lambda sop_class: accepted_syntaxes(assoc, sop_class),
                lambda: bool(event.is_cancelled),
            )
