"""Which log records become which syslog messages, with identities that repeat when a
record is read again."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiokafka.structs import ConsumerRecord

from infra.atna.export import AuditExport
from infra.eventlog import _headers
from infra.settings import AtnaSettings, DicomSettings, Settings
from schemas.audit import AccessEntry
from schemas.events import AccessAudited, Event, StudyStabilized, UserDeleted
from tests.atna_schema import schema_errors

SETTINGS = Settings(
    dicom=DicomSettings(ae_title="ARCHIVE1"),
    atna=AtnaSettings(syslog_url="tcp://127.0.0.1:514", hostname="node-1"),
)


def record(
    event: Event, offset: int = 0, value: bytes | None = None
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="pacs.events", partition=0, offset=offset, timestamp=0, timestamp_type=0,
        key=b"k", value=event.model_dump_json().encode() if value is None else value,
        checksum=None, serialized_key_size=1, serialized_value_size=1,
        headers=tuple(_headers(event)),
    )  # fmt: skip


def entry(action: str, actor: str) -> AccessEntry:
    return AccessEntry(action=action, outcome="success", actor=actor, via="token")


def parts(frame: bytes) -> tuple[str, str, ET.Element]:
    """(PROCID, identity, XML root) of one framed message; the XML valid A.5."""
    length, message = frame.split(b" ", 1)
    assert int(length) == len(message)
    header, xml = message.split(b"\xef\xbb\xbf", 1)
    assert schema_errors(xml) == ""
    fields = header.split(b" ")
    assert fields[2] == b"node-1" and fields[3] == b"pacs"
    identity = header.split(b'id="')[1].split(b'"')[0].decode()
    return fields[4].decode(), identity, ET.fromstring(xml)


def test_each_entry_is_one_message_with_a_stable_identity() -> None:
    event = AccessAudited(source="gateway", entries=[entry("c-find", "CT1"), entry("c-get", "WS")])
    export = AuditExport(SETTINGS)
    first = [parts(f) for f in export.frames(record(event))]
    assert [(proc, identity) for proc, identity, _ in first] == [
        ("gateway", f"{event.event_id}/0"),
        ("gateway", f"{event.event_id}/1"),
    ]
    source = first[0][2].find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID") == "ARCHIVE1"
    code = source.find("AuditSourceTypeCode")
    assert code is not None and code.get("csd-code") == "4"  # application server
    again = [identity for _, identity, _ in map(parts, export.frames(record(event, offset=9)))]
    assert again == [identity for _, identity, _ in first]


def test_api_entries_come_from_a_web_server() -> None:
    event = AccessAudited(source="api", entries=[entry("qido", "dr.who")])
    (frame,) = AuditExport(SETTINGS).frames(record(event))
    proc, _, root = parts(frame)
    code = root.find("AuditSourceIdentification/AuditSourceTypeCode")
    assert proc == "api" and code is not None and code.get("csd-code") == "3"


def test_security_events_are_exported_and_other_events_skipped() -> None:
    export = AuditExport(SETTINGS)
    deleted = UserDeleted(username="dr.who", actor="admin")
    (frame,) = export.frames(record(deleted))
    assert parts(frame)[1] == f"{deleted.event_id}/0"
    stabilized = StudyStabilized(
        study_instance_uid="1.2.3", series_count=1, instance_count=1, quiet_seconds=30
    )
    assert export.frames(record(stabilized)) == []


def test_an_undecodable_record_is_skipped_not_fatal() -> None:
    event = AccessAudited(source="api", entries=[entry("qido", "dr.who")])
    assert AuditExport(SETTINGS).frames(record(event, value=b"{not json")) == []
