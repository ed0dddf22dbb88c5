"""DICOM PS3.15 A.5 audit messages: the parts of one message and its XML.

The XML follows the A.5.1 schema (tests validate every kind of message we build against
it, tests/data/atna/audit-message.rnc). Built with the standard library: exporting must not
depend on a parser we only need to check the result.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime

from infra.atna.codes import Code

# Characters XML 1.0 cannot carry at all (not even escaped): a user name or an error text
# with a NUL in it must not make the whole message unreadable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

SUCCESS = "0"
MINOR_FAILURE = "4"


def xml_text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


@dataclass(frozen=True)
class AuditSource:
    """AuditSourceIdentification: who reports (AuditSourceTypeCode 3 web server, 4 app server)."""

    source_id: str
    enterprise_site_id: str = ""
    type_code: str = "4"


@dataclass(frozen=True)
class Participant:
    """An ActiveParticipant: a user, an AE, or this node."""

    user_id: str
    requestor: bool
    address: str = ""
    roles: tuple[Code, ...] = ()
    alternative_user_id: str = ""


@dataclass(frozen=True)
class ParticipantObject:
    """A ParticipantObjectIdentification: a patient, a study, a query, a user, a node."""

    object_id: str
    id_type: Code
    type_code: str  # 1 person, 2 system object
    role: str  # ParticipantObjectTypeCodeRole: 1 patient, 3 report, 11 user, 13 resource, ...
    name: str = ""
    query: bytes | None = None  # a query object carries its query instead of a name
    details: tuple[tuple[str, str], ...] = ()  # ParticipantObjectDetail type/value pairs
    # A study's SOPClass description: how many instances, and which when known.
    number_of_instances: int | None = None
    instance_uids: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditMessage:
    event: Code
    action: str  # EventActionCode: C, R, U, D, E
    occurred_at: datetime
    outcome: str  # EventOutcomeIndicator: 0 success, 4 minor, 8 serious, 12 major failure
    participants: tuple[Participant, ...]
    source: AuditSource
    objects: tuple[ParticipantObject, ...] = ()
    event_types: tuple[Code, ...] = field(default=())
    outcome_description: str = ""


def _code(parent: ET.Element, tag: str, code: Code) -> None:
    ET.SubElement(
        parent,
        tag,
        {"csd-code": code.code, "codeSystemName": code.system, "originalText": code.meaning},
    )


def _address_type(address: str) -> str:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "1"  # a machine name
    return "2"


def _date_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds")


def _event(root: ET.Element, message: AuditMessage) -> None:
    event = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": message.action,
            "EventDateTime": _date_time(message.occurred_at),
            "EventOutcomeIndicator": message.outcome,
        },
    )
    _code(event, "EventID", message.event)
    for event_type in message.event_types:
        _code(event, "EventTypeCode", event_type)
    if message.outcome_description:
        ET.SubElement(event, "EventOutcomeDescription").text = xml_text(message.outcome_description)


def _participant(root: ET.Element, participant: Participant) -> None:
    attributes = {
        "UserID": xml_text(participant.user_id),
        "UserIsRequestor": "true" if participant.requestor else "false",
    }
    if participant.alternative_user_id:
        attributes["AlternativeUserID"] = xml_text(participant.alternative_user_id)
    if participant.address:
        attributes["NetworkAccessPointID"] = xml_text(participant.address)
        attributes["NetworkAccessPointTypeCode"] = _address_type(participant.address)
    element = ET.SubElement(root, "ActiveParticipant", attributes)
    for role in participant.roles:
        _code(element, "RoleIDCode", role)


def _source(root: ET.Element, source: AuditSource) -> None:
    attributes = {"AuditSourceID": xml_text(source.source_id)}
    if source.enterprise_site_id:
        attributes["AuditEnterpriseSiteID"] = xml_text(source.enterprise_site_id)
    element = ET.SubElement(root, "AuditSourceIdentification", attributes)
    ET.SubElement(element, "AuditSourceTypeCode", {"csd-code": source.type_code})


def _object(root: ET.Element, item: ParticipantObject) -> None:
    element = ET.SubElement(
        root,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": xml_text(item.object_id),
            "ParticipantObjectTypeCode": item.type_code,
            "ParticipantObjectTypeCodeRole": item.role,
        },
    )
    _code(element, "ParticipantObjectIDTypeCode", item.id_type)
    if item.query is not None:
        ET.SubElement(element, "ParticipantObjectQuery").text = base64.b64encode(
            item.query
        ).decode()
    else:
        ET.SubElement(element, "ParticipantObjectName").text = xml_text(item.name or item.object_id)
    for kind, value in item.details:
        # Values are base64 (A.5.1): whatever a client sent cannot break the XML.
        ET.SubElement(
            element,
            "ParticipantObjectDetail",
            {"type": kind, "value": base64.b64encode(value.encode()).decode()},
        )
    if item.number_of_instances is not None:
        description = ET.SubElement(element, "ParticipantObjectDescription")
        sop_class = ET.SubElement(
            description, "SOPClass", {"NumberOfInstances": str(item.number_of_instances)}
        )
        for uid in item.instance_uids:
            ET.SubElement(sop_class, "Instance", {"UID": uid})


def to_xml(message: AuditMessage) -> bytes:
    """The message as a UTF-8 XML document (with its declaration), on one line."""
    root = ET.Element("AuditMessage")
    _event(root, message)
    for participant in message.participants:
        _participant(root, participant)
    _source(root, message.source)
    for item in message.objects:
        _object(root, item)
    # One line: receivers that store messages line by line (rsyslog escapes a newline as
    # "#012") keep the XML as it was sent.
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode").encode()
    )
