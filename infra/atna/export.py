"""Log records → framed syslog messages: what the audit exporter sends for each event.

A message's identity is `<event_id>/<index of the entry in its event>`: the same record read
twice (after a crash between sending and committing) gives the same identities, so a
repository can recognise the repeat.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable

from aiokafka.structs import ConsumerRecord

from infra.atna.mapping import access_message, security_message
from infra.atna.message import AuditSource, to_xml
from infra.atna.syslog import SyslogHeader, octet_counted, syslog_message
from infra.settings import Settings
from schemas.events import (
    AccessAudited,
    ApiKeyCreated,
    ApiKeyRevoked,
    CertificateIssued,
    NodeDeleted,
    NodeSaved,
    StudyLabelsSet,
    UserDeleted,
    UserSaved,
    parse_event,
)

log = logging.getLogger(__name__)

SECURITY_EVENTS = (
    UserSaved,
    UserDeleted,
    ApiKeyCreated,
    ApiKeyRevoked,
    NodeSaved,
    NodeDeleted,
    CertificateIssued,
    StudyLabelsSet,
)
EXPORTED_TYPES = frozenset(
    {AccessAudited.model_fields["type"].default}
    | {kind.model_fields["type"].default for kind in SECURITY_EVENTS}
)
# AuditSourceTypeCode (A.5.1.2.1): the API is a web server, the gateway an application server.
SOURCE_TYPES = {"api": "3"}


class AuditExport:
    """Turns audit and security events into framed syslog messages for the repository."""

    def __init__(self, settings: Settings) -> None:
        atna = settings.atna
        self.source_id = atna.audit_source_id or settings.dicom.ae_title
        self.site_id = atna.enterprise_site_id
        self.hostname = atna.hostname or socket.gethostname()
        self.app_name = atna.app_name

    def _source(self, process: str) -> AuditSource:
        return AuditSource(self.source_id, self.site_id, SOURCE_TYPES.get(process, "4"))

    def frames(self, record: ConsumerRecord[bytes, bytes]) -> list[bytes]:
        """The messages of one record (none for events that are not audited)."""
        kind = dict(record.headers or ()).get("type")
        if record.value is None or (kind is not None and kind.decode() not in EXPORTED_TYPES):
            return []
        try:
            event = parse_event(record.value)
        except ValueError:
            # One record we cannot read must not stop the audit trail behind it.
            log.error("skipping undecodable record %d/%d", record.partition, record.offset)
            return []
        if isinstance(event, AccessAudited):
            source = self._source(event.source)
            header = SyslogHeader(self.hostname, self.app_name, event.source)
            return [
                octet_counted(
                    syslog_message(
                        to_xml(access_message(entry, source)),
                        header,
                        f"{event.event_id}/{index}",
                        entry.occurred_at,
                        entry.outcome == "success",
                    )
                )
                for index, entry in enumerate(event.entries)
            ]
        if isinstance(event, SECURITY_EVENTS):
            message = security_message(event, self._source("api"))
            header = SyslogHeader(self.hostname, self.app_name, "api")
            identity = f"{event.event_id}/0"
            xml = to_xml(message)
            return [octet_counted(syslog_message(xml, header, identity, event.occurred_at, True))]
        return []

    def batch(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> list[bytes]:
        return [frame for record in records for frame in self.frames(record)]
