"""C-GET SCP (Patient Root and Study Root): C-STORE sub-operations on the same association,
over the storage contexts the requestor negotiated with the SCP role (PS3.4 C.4.3)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from infra.dicom.statuses import status_dataset
from infra.dimse.sending import accepted_syntaxes
from ingest.dimse.retrieve import (
    RetrieveError,
    RetrieveSource,
    find_instances,
    request_identifier,
    sub_operations,
)

log = logging.getLogger(__name__)


class GetHandler:
    """EVT_C_GET: yields the sub-operation count, then each dataset."""

    def __init__(self, source: RetrieveSource) -> None:
        self.source = source

    def __call__(self, event: Any) -> Iterator[Any]:
        assoc = event.assoc
        calling_ae = assoc.requestor.ae_title.strip()
        identifier = request_identifier(event)
        try:
            instances = find_instances(self.source, identifier, str(event.context.abstract_syntax))
        except RetrieveError as error:
            log.warning(
                "C-GET from %s refused with 0x%04X: %s", calling_ae, error.status, error.reason
            )
            yield 1
            yield status_dataset(error.status, error.reason), None
            return
        log.info("C-GET from %s: %d instances", calling_ae, len(instances))
        yield len(instances)
        yield from sub_operations(
            instances,
            self.source.load,
            lambda sop_class: accepted_syntaxes(assoc, sop_class),
            lambda: bool(event.is_cancelled),
        )
