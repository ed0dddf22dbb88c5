"""IHE ATNA export: after QIDO and WADO by two users and a C-FIND and a C-GET by two AEs,
Debian's rsyslog has each audit entry once, as valid DICOM A.5 XML, including the ones
recorded while it was stopped and while the exporter was; over TLS, rsyslog accepts our
certificate and nothing is lost across its restart."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from infra.atna.syslog import SyslogHeader, SyslogSender, octet_counted, syslog_message
from infra.settings import AtnaSettings
from tests.atna_schema import schema_errors
from tests.dicom_factory import ct_series, write_series
from tests.integration.conftest import (
    PORT_SHIFT,
    Platform,
    eventually,
    platform_settings,
    run,
    running_platform,
)
from tests.integration.rsyslog import Received, Rsyslog, make_tls_files
from tests.login import login

pytestmark = pytest.mark.integration

BASE = 16000  # reused: test modules' stacks never run at the same time
PATIENT = "ATNA-0001"
# What each audit action is as an A.5.3 message (PS3.16 CID 400).
EVENT_IDS = {
    "qido": "110112",
    "c-find": "110112",
    "wado": "110104",
    "c-get": "110104",
    "wado-metadata": "110103",
}


def event_id(root: ET.Element) -> str:
    found = root.find("EventIdentification/EventID")
    assert found is not None
    return found.attrib["csd-code"]


def summary(message: Received) -> tuple[str, str, str, str]:
    """(EventID, requesting user, study, outcome indicator) of one valid A.5 message."""
    errors = schema_errors(message.xml)
    assert errors == "", f"{message.identity}: {errors}"
    root = ET.fromstring(message.xml)
    (user,) = [p for p in root.iter("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    studies = [
        o.get("ParticipantObjectID", "")
        for o in root.iter("ParticipantObjectIdentification")
        if o.find("ParticipantObjectIDTypeCode[@csd-code='110180']") is not None
    ]
    outcome = root.find("EventIdentification")
    assert outcome is not None
    return (
        event_id(root),
        user.get("UserID", ""),
        studies[0] if studies else "",
        outcome.get("EventOutcomeIndicator", ""),
    )


def expected_of(entries: list[dict[str, Any]]) -> Counter[tuple[str, str, str, str]]:
    return Counter(
        (
            EVENT_IDS[e["action"]],
            e["actor"],
            e["study_instance_uid"],
            "0" if e["outcome"] == "success" else "4",
        )
        for e in entries
    )


def accesses(platform: Platform, study: str) -> list[dict[str, Any]]:
    response = platform.get("/api/audit/access", params={"StudyInstanceUID": study, "limit": 1000})
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def read_as(platform: Platform, auth: dict[str, str], study: str, sop_path: str) -> None:
    with httpx.Client(base_url=platform.http, headers=auth, timeout=30) as client:
        found = client.get("/dicom-web/studies", params={"PatientID": PATIENT})
        assert found.status_code == 200, found.text
        got = client.get(sop_path, headers={"Accept": "application/dicom"})
        assert got.status_code == 200, got.text
        missing = client.get(f"/dicom-web/studies/{study}/series/1.2.3")
        assert missing.status_code == 404


def dimse(platform: Platform, command: str, title: str, study: str, out: Path) -> None:
    host, port = platform.dicom
    key = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    out.mkdir(parents=True, exist_ok=True)
    extra = ["-od", str(out)] if command == "getscu" else []
    done = run([command, "-S", "-aet", title, "-aec", "PACS", *extra, *key, host, str(port)])
    assert done.returncode == 0, done.stderr


@pytest.fixture
async def receiver(tmp_path: Path) -> Any:
    rsyslog = Rsyslog(tmp_path / "rsyslog", BASE + PORT_SHIFT + 514)
    rsyslog.start()
    yield rsyslog
    rsyslog.stop()


async def test_audit_trail_reaches_rsyslog_once_across_its_outage(
    receiver: Rsyslog, dcmtk: None, tmp_path: Path
) -> None:
    settings = platform_settings(tmp_path / "platform", base=BASE)
    settings = settings.model_copy(
        update={
            "atna": AtnaSettings(
                syslog_url=f"tcp://127.0.0.1:{receiver.port}",
                audit_source_id="PACS-ATNA-TEST",
                enterprise_site_id="TEST-HOSPITAL",
                retry_max_seconds=2.0,
            )
        }
    )
    files = write_series(tmp_path / "ct", ct_series(3, size=16, patient_id=PATIENT))
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    study = first.StudyInstanceUID
    sop_path = (
        f"/dicom-web/studies/{study}/series/{first.SeriesInstanceUID}"
        f"/instances/{first.SOPInstanceUID}"
    )
    async with running_platform(settings) as platform:
        host, port = platform.dicom
        stored = run(["storescu", "-aet", "ATNACT", "-aec", "PACS", host, str(port),
                      *map(str, files)])  # fmt: skip
        assert stored.returncode == 0, stored.stderr

        def listed() -> bool:
            found = platform.get("/dicom-web/studies", params={"StudyInstanceUID": study})
            return found.status_code == 200 and len(found.json()) == 1

        await eventually(listed, timeout=30)
        with platform.client() as admin:
            made = admin.put(
                "/api/users/dr.atna",
                json={"password": "an auditor's test password", "roles": ["radiologist"]},
            )
            assert made.status_code == 200, made.text
        rad = login(platform.http, "dr.atna", "an auditor's test password")

        # While the receiver is up: one user's QIDO and WADO, one AE's C-FIND.
        read_as(platform, rad, study, sop_path)
        dimse(platform, "findscu", "FINDER1", study, tmp_path)

        def by_study() -> Counter[tuple[str, str, str, str]]:
            return Counter(s for m in receiver.received() if (s := summary(m))[2] == study)

        def recorded(*wanted: tuple[str, str]) -> bool:
            # The API and the gateway each flush their audit entries every few seconds, in
            # their own time: export is only complete against a log that has them all.
            actors = {(e["action"], e["actor"]) for e in accesses(platform, study)}
            return set(wanted) <= actors

        await eventually(
            lambda: recorded(("qido", "dr.atna"), ("wado", "dr.atna"), ("c-find", "FINDER1")),
            timeout=30,
        )

        def caught_up() -> bool:
            expected = expected_of(accesses(platform, study))
            return bool(expected) and by_study() == expected

        await eventually(caught_up, timeout=60)
        assert {("110112", "dr.atna"), ("110104", "dr.atna"), ("110112", "FINDER1")} <= {
            (event, user) for event, user, _, _ in by_study()
        }

        # The receiver stops; the exporter's connection to it is now dead.
        receiver.stop()
        before = len(receiver.received())
        read_as(platform, platform.auth, study, sop_path)  # the other user: admin
        dimse(platform, "getscu", "GETTER2", study, tmp_path / "got")

        await eventually(
            lambda: recorded(("qido", "admin"), ("wado", "admin"), ("c-get", "GETTER2")),
            timeout=30,
        )
        exporter_log = platform.settings.log_dir / "audit-export.log"

        def retrying() -> bool:
            return "not delivered" in exporter_log.read_text()

        await eventually(retrying, timeout=30)
        await asyncio.sleep(3)  # a few more attempts against the stopped receiver
        assert len(receiver.received()) == before

        receiver.start()
        await eventually(caught_up, timeout=60)
        during = {(event, user) for event, user, _, _ in by_study()}
        assert {("110104", "admin"), ("110112", "admin"), ("110104", "GETTER2")} <= during

        # The exporter stops and starts again: it resumes from its committed offsets, so what
        # was recorded meanwhile arrives and nothing sent before is sent again.
        (exporter,) = [p for p in platform.stack.app_processes() if p.name == "audit-export"]
        exporter.stop()
        dimse(platform, "findscu", "FINDER3", study, tmp_path)

        def found_by_finder3() -> bool:
            return any(e["actor"] == "FINDER3" for e in accesses(platform, study))

        await eventually(found_by_finder3, timeout=30)
        exporter.start()
        await eventually(caught_up, timeout=60)
        assert by_study()[("110112", "FINDER3", study, "0")] == 1

        everything = receiver.received()
        identities = Counter(m.identity for m in everything)
        assert [i for i, n in identities.items() if n > 1] == []  # each message once
        for message in everything:
            assert schema_errors(message.xml) == "", message.identity
            assert message.msgid == "IHE+RFC-3881" and message.app_name == "pacs"
            assert message.priority in (10 * 8 + 5, 10 * 8 + 4)  # authpriv.notice/warning
        roots = [ET.fromstring(m.xml) for m in everything]
        source = roots[0].find("AuditSourceIdentification")
        assert source is not None and source.get("AuditSourceID") == "PACS-ATNA-TEST"
        # The second user's creation and login are in the trail too.
        assert any(
            event_id(r) == "110113"
            and r.find("ParticipantObjectIdentification[@ParticipantObjectID='dr.atna']")
            is not None
            for r in roots
        )
        assert any(
            event_id(r) == "110114" and r.find("ActiveParticipant[@UserID='dr.atna']") is not None
            for r in roots
        )
        failed_wado = ("110104", "dr.atna", study, "4")  # the series that does not exist
        assert by_study()[failed_wado] == 1


async def test_tls_with_our_certificate_survives_a_receiver_restart(tmp_path: Path) -> None:
    """RFC 5425 against rsyslog's OpenSSL driver, which requires a client certificate from
    the test CA; a batch sent while it restarts arrives once, after it is back."""
    tls = make_tls_files(tmp_path / "pki")
    rsyslog = Rsyslog(tmp_path / "rsyslog", BASE + PORT_SHIFT + 515, tls)
    rsyslog.start()
    atna = AtnaSettings(
        syslog_url=f"tls://127.0.0.1:{rsyslog.port}",
        ca_file=tls.ca,
        cert_file=tls.client_cert,
        key_file=tls.client_key,
        retry_max_seconds=1.0,
    )
    sender = SyslogSender(atna)
    stop = asyncio.Event()
    header = SyslogHeader("pacs-host", "pacs", "api")

    def frames(*identities: str) -> list[bytes]:
        xml = b"<?xml version='1.0' encoding='utf-8'?><AuditMessage/>"
        return [
            octet_counted(syslog_message(xml, header, i, datetime.now(UTC), True))
            for i in identities
        ]

    try:
        assert await sender.deliver(frames("e1/0", "e1/1"), stop)
        await eventually(lambda: len(rsyslog.received()) == 2, timeout=10)
        rsyslog.stop()
        delivery = asyncio.create_task(sender.deliver(frames("e2/0"), stop))
        await asyncio.sleep(2)
        assert not delivery.done()  # nothing to send to: retried, not dropped
        rsyslog.start()
        assert await asyncio.wait_for(delivery, 20)
        await eventually(lambda: len(rsyslog.received()) == 3, timeout=10)
        assert [m.identity for m in rsyslog.received()] == ["e1/0", "e1/1", "e2/0"]

        # Without our certificate, rsyslog refuses the session: nothing counts as delivered.
        anonymous = SyslogSender(atna.model_copy(update={"cert_file": None, "key_file": None}))
        with pytest.raises(OSError):
            await anonymous.send(frames("e3/0"))
        await anonymous.close()
        await asyncio.sleep(1)
        assert [m.identity for m in rsyslog.received()] == ["e1/0", "e1/1", "e2/0"]
    finally:
        stop.set()
        await sender.close()
        rsyslog.stop()
