"""Every kind of audit message we build is valid against the DICOM A.5.1 schema and says
who did what to whose study, with which outcome."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from infra.atna.mapping import access_message, security_message
from infra.atna.message import AuditSource, to_xml
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
from schemas.nodes import Node
from schemas.security import ApiKey, RoleBinding, StudyScope, User
from tests.atna_schema import schema_errors

SOURCE = AuditSource("PACS", "HOSPITAL-1", "3")
STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"
SOP = "1.2.826.0.1.3680043.8.498.3"


def entry(action: str, outcome: str = "success", **fields: str) -> AccessEntry:
    base = {
        "actor": "dr.who",
        "via": "token",
        "address": "10.0.0.7",
        "patient_id": "PAT-1",
        "study_instance_uid": STUDY,
    }
    return AccessEntry.model_validate(
        {
            "occurred_at": datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC),
            "action": action,
            "outcome": outcome,
            **base,
            **fields,
        }
    )


def parsed(xml: bytes) -> ET.Element:
    assert schema_errors(xml) == "", schema_errors(xml)
    return ET.fromstring(xml)


def code(element: ET.Element | None) -> str:
    assert element is not None
    return element.attrib["csd-code"]


def objects(root: ET.Element) -> dict[str, ET.Element]:
    """ParticipantObjectIdentification by their ID type code."""
    return {
        code(o.find("ParticipantObjectIDTypeCode")): o
        for o in root.iter("ParticipantObjectIdentification")
    }


def requestor(root: ET.Element) -> ET.Element:
    (found,) = [p for p in root.iter("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    return found


ACCESS_CASES = [
    # action, outcome, EventID, EventActionCode, requestor's role
    ("qido", "success", "110112", "E", "110153"),
    ("c-find", "success", "110112", "E", "110153"),
    ("wado", "success", "110104", "R", "110152"),
    ("wado", "failure", "110104", "R", "110152"),
    ("wado-frames", "success", "110104", "R", "110152"),
    ("wado-uri", "success", "110104", "R", "110152"),
    ("c-get", "success", "110104", "R", "110152"),
    ("wado-metadata", "success", "110103", "R", None),
    ("wado-rendered", "success", "110103", "R", None),
    ("mwl-find", "success", "110112", "E", "110153"),
    ("worklist", "success", "110112", "E", "110153"),
    ("mpps", "success", "110111", "R", None),
]


@pytest.mark.parametrize(("action", "outcome", "event_id", "verb", "role"), ACCESS_CASES)
def test_phi_access_names_user_patient_study_and_outcome(
    action: str, outcome: str, event_id: str, verb: str, role: str | None
) -> None:
    detail = "PatientID=PAT-1" if action in ("qido", "c-find") else "not found"
    root = parsed(to_xml(access_message(entry(action, outcome, detail=detail), SOURCE)))
    event = root.find("EventIdentification")
    assert event is not None
    assert code(event.find("EventID")) == event_id
    assert event.get("EventActionCode") == verb
    assert event.get("EventOutcomeIndicator") == ("0" if outcome == "success" else "4")
    assert event.get("EventDateTime") == "2026-12-01T10:00:00.123+00:00"
    user = requestor(root)
    assert user.get("UserID") == "dr.who"
    assert user.get("NetworkAccessPointID") == "10.0.0.7"
    assert user.get("NetworkAccessPointTypeCode") == "2"
    assert [code(r) for r in user.iter("RoleIDCode")] == ([role] if role else [])
    found = objects(root)
    assert found["2"].get("ParticipantObjectID") == "PAT-1"
    assert found["2"].get("ParticipantObjectTypeCodeRole") == "1"
    assert found["110180"].get("ParticipantObjectID") == STUDY
    if action in ("qido", "c-find"):
        query = found["110181"]
        assert query.get("ParticipantObjectID") == "1.2.840.10008.5.1.4.1.2.2.1"
        assert base64.b64decode(query.findtext("ParticipantObjectQuery", "")) == detail.encode()
    if outcome != "success":
        assert event.findtext("EventOutcomeDescription") == "not found"
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID") == "PACS"
    assert source.get("AuditEnterpriseSiteID") == "HOSPITAL-1"


def test_retrieve_lists_series_and_instance_count() -> None:
    got = entry("c-get", actor="GETTER", via="dimse", calling_ae="GETTER", detail="3 instance(s)")
    got = got.model_copy(update={"series_instance_uid": SERIES})
    root = parsed(to_xml(access_message(got, SOURCE)))
    study = objects(root)["110180"]
    sop_class = study.find("ParticipantObjectDescription/SOPClass")
    assert sop_class is not None and sop_class.get("NumberOfInstances") == "3"
    detail = study.find("ParticipantObjectDetail")
    assert detail is not None and detail.get("type") == "SeriesInstanceUID"
    assert base64.b64decode(detail.get("value", "")) == SERIES.encode()
    assert requestor(root).get("AlternativeUserID") == "AETITLES=GETTER"


def test_instance_read_names_the_instance() -> None:
    root = parsed(to_xml(access_message(entry("wado", sop_instance_uid=SOP), SOURCE)))
    instance = objects(root)["110180"].find("ParticipantObjectDescription/SOPClass/Instance")
    assert instance is not None and instance.get("UID") == SOP


def test_move_names_its_destination() -> None:
    moved = entry("c-move", actor="MOVER", detail="2 instance(s) to STORESCP")
    root = parsed(to_xml(access_message(moved, SOURCE)))
    roles = {
        p.get("UserID"): [code(r) for r in p.iter("RoleIDCode")]
        for p in root.iter("ActiveParticipant")
    }
    assert roles == {"MOVER": [], "PACS": ["110153"], "STORESCP": ["110152"]}


@pytest.mark.parametrize(
    ("action", "outcome", "event_id", "event_type"),
    [
        ("login", "success", "110114", "110122"),
        ("login", "failure", "110114", "110122"),
        ("logout", "success", "110114", "110123"),
        ("denied", "denied", "110113", "110132"),
        ("unauthenticated", "denied", "110113", "110132"),
        ("association", "denied", "110113", "110126"),
        ("something-new", "denied", "110113", "110132"),
    ],
)
def test_logins_and_security_decisions(
    action: str, outcome: str, event_id: str, event_type: str
) -> None:
    decided = entry(action, outcome, detail="GET /api/audit/access", patient_id="")
    decided = decided.model_copy(update={"study_instance_uid": ""})
    root = parsed(to_xml(access_message(decided, SOURCE)))
    event = root.find("EventIdentification")
    assert event is not None
    assert code(event.find("EventID")) == event_id
    assert code(event.find("EventTypeCode")) == event_type
    assert event.get("EventOutcomeIndicator") == ("0" if outcome == "success" else "4")
    assert requestor(root).get("UserID") == "dr.who"


def test_an_unauthenticated_caller_is_known_by_address() -> None:
    anonymous = entry("unauthenticated", "denied", actor="", detail="GET /dicom-web/studies")
    assert requestor(parsed(to_xml(access_message(anonymous, SOURCE)))).get("UserID") == (
        "10.0.0.7"
    )


def test_text_xml_cannot_carry_is_replaced_and_markup_escaped() -> None:
    hostile = entry("login", "failure", actor="eve\x00<x/>", detail="bad\x01 & <password>")
    root = parsed(to_xml(access_message(hostile, SOURCE)))
    assert requestor(root).get("UserID") == "eve\ufffd<x/>"
    assert root.findtext("EventIdentification/EventOutcomeDescription") == "bad\ufffd & <password>"


NODE = Node(name="ct-1", ae_title="CT1", host="10.0.4.21", port=104, addresses=["10.0.4.21"])
KEY = ApiKey(key_id="k1", name="RIS", owner="admin", secret_sha256="f" * 64, roles=["integration"])
SECURITY_CASES: list[tuple[SecurityEvent | StudyLabelsSet, str, str]] = [
    (
        UserSaved(
            user=User(username="dr.who", password_hash="$argon2id$secret", roles=["radiologist"]),
            actor="admin",
        ),
        "110137",
        "dr.who",
    ),
    (UserDeleted(username="dr.who", actor="admin"), "110137", "dr.who"),
    (ApiKeyCreated(key=KEY, actor="admin"), "110129", "api-key:k1"),
    (ApiKeyRevoked(key_id="k1", actor="admin"), "110129", "api-key:k1"),
    (NodeSaved(node=NODE, actor="admin"), "110128", "ct-1"),
    (NodeDeleted(name="ct-1", actor="admin"), "110128", "ct-1"),
    (
        UserSaved(
            user=User(
                username="dr.mary",
                password_hash="$argon2id$secret",
                bindings=[
                    RoleBinding(role="radiologist", scope=StudyScope(institutions=["St. Mary"]))
                ],
            ),
            actor="admin",
        ),
        "110137",
        "dr.mary",
    ),
    (
        CertificateIssued(
            ae_title="WS7",
            sha256="AB:CD",
            not_after=datetime(2027, 12, 1, tzinfo=UTC),
            actor="admin",
        ),
        "110129",
        "WS7",
    ),
    (
        StudyLabelsSet(study_instance_uid="1.2.3", labels=["trial-7"], actor="admin"),
        "110129",
        "1.2.3",
    ),
]


@pytest.mark.parametrize(("event", "event_type", "subject"), SECURITY_CASES)
def test_configuration_changes_are_security_alerts(
    event: SecurityEvent | StudyLabelsSet, event_type: str, subject: str
) -> None:
    xml = to_xml(security_message(event, SOURCE))
    root = parsed(xml)
    identification = root.find("EventIdentification")
    assert identification is not None
    assert code(identification.find("EventID")) == "110113"
    assert code(identification.find("EventTypeCode")) == event_type
    assert requestor(root).get("UserID") == "admin"
    (changed,) = root.iter("ParticipantObjectIdentification")
    assert changed.get("ParticipantObjectID") == subject
    # Neither the password hash nor the key's hash leaves the platform.
    assert b"argon2id" not in xml and b"ffffffff" not in xml


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda r: r.remove(r.find("AuditSourceIdentification")), id="no-source"),
        pytest.param(
            lambda r: r.find("EventIdentification").set("EventOutcomeIndicator", "1"),
            id="outcome-not-in-schema",
        ),
        pytest.param(
            lambda r: r.find("EventIdentification/EventID").attrib.pop("originalText"),
            id="code-without-meaning",
        ),
        pytest.param(
            lambda r: r.find("ActiveParticipant").set("UserIsRequestor", "yes"), id="not-boolean"
        ),
        pytest.param(lambda r: ET.SubElement(r, "Comment"), id="unknown-element"),
    ],
)
def test_the_schema_check_can_fail(mutate: object) -> None:
    root = ET.fromstring(to_xml(access_message(entry("qido", detail="PatientID=PAT-1"), SOURCE)))
    mutate(root)  # type: ignore[operator]
    assert schema_errors(ET.tostring(root)) != ""


def test_reading_the_audit_trail_is_audit_log_used() -> None:
    root = parsed(to_xml(access_message(entry("audit-read", detail="actor=dr.who"), SOURCE)))
    identification = root.find("EventIdentification")
    assert identification is not None
    assert code(identification.find("EventID")) == "110101"
    (used,) = root.iter("ParticipantObjectIdentification")
    assert used.get("ParticipantObjectTypeCodeRole") == "13"
