"""Which A.5.3 audit message each audit entry and each security event becomes.

One message per audit entry (a QIDO answer of ten studies is ten entries, so ten Query
messages, each naming its patient and study), one per user, API key or node change. The
table is in docs/security.md ("ATNA export"); PS3.15 A.5.3 and PS3.16 CID 400-404 give the
codes.
"""

from __future__ import annotations

import re

from infra.atna import codes
from infra.atna.codes import Code
from infra.atna.message import (
    MINOR_FAILURE,
    SUCCESS,
    AuditMessage,
    AuditSource,
    Participant,
    ParticipantObject,
)
from schemas.audit import AccessEntry
from schemas.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    CertificateIssued,
    NodeDeleted,
    NodeSaved,
    SecurityEvent,
    StudyLabelsSet,
    UserDeleted,
    UserSaved,
)

QUERIES = {
    "qido": codes.STUDY_ROOT_FIND,
    "c-find": codes.STUDY_ROOT_FIND,
    "changes": codes.STUDY_ROOT_FIND,
    "mwl-find": codes.WORKLIST_FIND,
    "worklist": codes.WORKLIST_FIND,
}
# Bytes of instances leave the archive: DICOM Instances Transferred (we are the source).
TRANSFERS = {"wado", "wado-frames", "wado-bulkdata", "wado-uri", "c-get", "c-move"}
# Headers or derived pictures only: DICOM Instances Accessed.
ACCESSES = {"wado-metadata", "wado-rendered", "wado-thumbnail"}
LOGINS = {"login": codes.LOGIN, "logout": codes.LOGOUT}
# Everything else an entry can say (denied, unauthenticated, association, and actions
# added later) is a Security Alert: an auditor sees it rather than nothing.
ALERT_TYPES = {"association": codes.NODE_AUTHENTICATION}

_COUNT = re.compile(r"^(\d+) instance\(s\)")
_DESTINATION = re.compile(r" to (\S+)$")


def _outcome(entry: AccessEntry) -> str:
    return SUCCESS if entry.outcome == "success" else MINOR_FAILURE


def _requestor(entry: AccessEntry, *roles: Code) -> Participant:
    return Participant(
        user_id=entry.actor or entry.address or "unknown",
        requestor=True,
        address=entry.address,
        roles=roles,
        alternative_user_id=f"AETITLES={entry.calling_ae}" if entry.calling_ae else "",
    )


def _us(source: AuditSource, *roles: Code) -> Participant:
    return Participant(user_id=source.source_id, requestor=False, roles=roles)


def _subjects(entry: AccessEntry) -> list[ParticipantObject]:
    """The patient and the study an entry names (the study with its series and instances)."""
    objects = []
    if entry.patient_id:
        objects.append(
            ParticipantObject(entry.patient_id, codes.PATIENT_NUMBER, type_code="1", role="1")
        )
    if entry.study_instance_uid:
        count = _COUNT.match(entry.detail)
        instances = (entry.sop_instance_uid,) if entry.sop_instance_uid else ()
        number = int(count.group(1)) if count else (1 if instances else None)
        series = (
            (("SeriesInstanceUID", entry.series_instance_uid),) if entry.series_instance_uid else ()
        )
        objects.append(
            ParticipantObject(
                entry.study_instance_uid,
                codes.STUDY_INSTANCE_UID,
                type_code="2",
                role="3",
                details=series,
                number_of_instances=number,
                instance_uids=instances,
            )
        )
    return objects


def _message(
    entry: AccessEntry,
    source: AuditSource,
    event: Code,
    action: str,
    participants: tuple[Participant, ...],
    objects: list[ParticipantObject],
    event_types: tuple[Code, ...] = (),
) -> AuditMessage:
    return AuditMessage(
        event=event,
        action=action,
        occurred_at=entry.occurred_at,
        outcome=_outcome(entry),
        participants=participants,
        source=source,
        objects=tuple(objects),
        event_types=event_types,
        outcome_description=entry.detail if entry.outcome != "success" else "",
    )


def access_message(entry: AccessEntry, source: AuditSource) -> AuditMessage:
    """The A.5.3 message of one audit entry."""
    action = entry.action
    participants: tuple[Participant, ...]
    if action in QUERIES:
        query = ParticipantObject(
            QUERIES[action],
            codes.SOP_CLASS_UID,
            type_code="2",
            role="3",  # A.5.3.10: the query object is a "report"
            query=entry.detail.encode(),
        )
        participants = (_requestor(entry, codes.SOURCE), _us(source, codes.DESTINATION))
        return _message(entry, source, codes.QUERY, "E", participants, [query, *_subjects(entry)])
    if action in TRANSFERS:
        destination = _DESTINATION.search(entry.detail) if action == "c-move" else None
        if destination:  # C-MOVE: the requestor names another AE to receive the instances
            participants = (
                _requestor(entry),
                _us(source, codes.SOURCE),
                Participant(destination.group(1), requestor=False, roles=(codes.DESTINATION,)),
            )
        else:
            participants = (_requestor(entry, codes.DESTINATION), _us(source, codes.SOURCE))
        return _message(
            entry, source, codes.INSTANCES_TRANSFERRED, "R", participants, _subjects(entry)
        )
    if action in ACCESSES:
        participants = (_requestor(entry), _us(source))
        return _message(
            entry, source, codes.INSTANCES_ACCESSED, "R", participants, _subjects(entry)
        )
    if action == "audit-read":  # A.5.3.2 Audit Log Used: the audit trail itself was read
        log_object = ParticipantObject(
            f"{source.source_id}/api/audit",
            codes.URI,
            type_code="2",
            role="13",
            details=(("Query", entry.detail),) if entry.detail else (),
        )
        participants = (_requestor(entry), _us(source))
        return _message(entry, source, codes.AUDIT_LOG_USED, "R", participants, [log_object])
    if action == "mpps":  # A.5.3.9 Procedure Record: a performed procedure step was read
        participants = (_requestor(entry), _us(source))
        return _message(entry, source, codes.PROCEDURE_RECORD, "R", participants, _subjects(entry))
    if action in LOGINS:
        participants = (_requestor(entry), _us(source))
        return _message(
            entry,
            source,
            codes.USER_AUTHENTICATION,
            "E",
            participants,
            [],
            (LOGINS[action],),
        )
    alert_type = ALERT_TYPES.get(action, codes.USE_OF_RESTRICTED_FUNCTION)
    subject = ParticipantObject(
        source.source_id,
        codes.NODE_ID,
        type_code="2",
        role="13",
        details=(("Alert Description", f"{action}: {entry.detail}"),),
    )
    return _message(
        entry,
        source,
        codes.SECURITY_ALERT,
        "E",
        (_requestor(entry), _us(source)),
        [subject, *_subjects(entry)],
        (alert_type,),
    )


def _change(
    event: SecurityEvent | StudyLabelsSet,
    source: AuditSource,
    alert_type: Code,
    subject: ParticipantObject,
) -> AuditMessage:
    return AuditMessage(
        event=codes.SECURITY_ALERT,
        action="E",
        occurred_at=event.occurred_at,
        outcome=SUCCESS,
        participants=(Participant(event.actor, requestor=True), _us(source)),
        source=source,
        objects=(subject,),
        event_types=(alert_type,),
    )


def _detail(what: str, **values: object) -> tuple[tuple[str, str], ...]:
    text = ", ".join(f"{name}={value}" for name, value in values.items())
    return (("Alert Description", f"{what}: {text}" if text else what),)


def security_message(event: SecurityEvent | StudyLabelsSet, source: AuditSource) -> AuditMessage:
    """A Security Alert for a change of who may do what (no password hash, no key hash)."""
    if isinstance(event, StudyLabelsSet):
        subject = ParticipantObject(
            event.study_instance_uid,
            codes.STUDY_INSTANCE_UID,
            type_code="2",
            role="3",
            details=_detail("access labels set", labels=",".join(event.labels)),
        )
        return _change(event, source, codes.SECURITY_CONFIGURATION, subject)
    if isinstance(event, UserSaved):
        user = event.user
        subject = ParticipantObject(
            user.username,
            codes.USER_IDENTIFIER,
            type_code="1",
            role="11",
            details=_detail(
                "user saved",
                roles=",".join(user.roles),
                bindings=";".join(
                    f"{b.role}@{'|'.join(b.scope.institutions + b.scope.labels)}"
                    for b in user.bindings
                ),
                disabled=user.disabled,
            ),
        )
        return _change(event, source, codes.USER_SECURITY_ATTRIBUTES_CHANGED, subject)
    if isinstance(event, UserDeleted):
        subject = ParticipantObject(
            event.username,
            codes.USER_IDENTIFIER,
            type_code="1",
            role="11",
            details=_detail("user deleted"),
        )
        return _change(event, source, codes.USER_SECURITY_ATTRIBUTES_CHANGED, subject)
    if isinstance(event, ApiKeyCreated | ApiKeyRevoked):
        key_id = event.key.key_id if isinstance(event, ApiKeyCreated) else event.key_id
        details = (
            _detail(
                "api key created",
                name=event.key.name,
                owner=event.key.owner,
                roles=",".join(event.key.roles),
                expires_at=event.key.expires_at,
            )
            if isinstance(event, ApiKeyCreated)
            else _detail("api key revoked")
        )
        subject = ParticipantObject(
            f"api-key:{key_id}", codes.USER_IDENTIFIER, type_code="2", role="11", details=details
        )
        return _change(event, source, codes.SECURITY_CONFIGURATION, subject)
    if isinstance(event, NodeSaved):
        node = event.node
        subject = ParticipantObject(
            node.name,
            codes.NODE_ID,
            type_code="2",
            role="13",
            name=node.ae_title,
            details=_detail(
                "node saved",
                ae_title=node.ae_title,
                host=node.host,
                port=node.port,
                services=",".join(node.services),
                addresses=",".join(node.addresses),
            ),
        )
        return _change(event, source, codes.NETWORK_CONFIGURATION, subject)
    if isinstance(event, CertificateIssued):
        subject = ParticipantObject(
            event.ae_title,
            codes.NODE_ID,
            type_code="2",
            role="13",
            details=_detail(
                "client certificate issued", sha256=event.sha256, not_after=event.not_after
            ),
        )
        return _change(event, source, codes.SECURITY_CONFIGURATION, subject)
    assert isinstance(event, NodeDeleted)
    subject = ParticipantObject(
        event.name, codes.NODE_ID, type_code="2", role="13", details=_detail("node deleted")
    )
    return _change(event, source, codes.NETWORK_CONFIGURATION, subject)
