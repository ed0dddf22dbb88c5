"""Routing delivery on the real platform, to Debian's Orthanc (C-STORE and STOW-RS) and to
DCMTK's storescp: what rules match arrives, byte-identical; a destination that is down
gets everything once it is back while the other is served on time; what stays
undeliverable becomes dead letters that a replay delivers; pause holds, resume sends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pydicom
import pytest

from apps.rules_cache import REFRESH_SECONDS
from tests.dicom_factory import ct_series, write_series
from tests.integration.conftest import Platform, eventually, run
from tests.orthanc import Orthanc
from tests.ports import free_port

pytestmark = pytest.mark.integration

RULES = "/api/routing/rules"
DELIVERIES = "/api/routing/deliveries"


@pytest.fixture
def orthancs(tmp_path: Path) -> Iterator[tuple[Orthanc, Orthanc]]:
    a = Orthanc(tmp_path / "a", free_port(), free_port(), aet="ROUTEA")
    b = Orthanc(tmp_path / "b", free_port(), free_port(), aet="ROUTEB", dicomweb=True)
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def put(platform: Platform, path: str, body: dict[str, Any]) -> None:
    response = platform.client().put(path, json=body)
    assert response.status_code == 200, response.text


def store(platform: Platform, folder: Path) -> None:
    host, port = platform.dicom
    result = run(
        ["storescu", "-aet", "ROUTESRC", "-aec", "PACS", "+sd", host, str(port), str(folder)]
    )
    assert result.returncode == 0, result.stderr


def delivery(platform: Platform, destination: str, via: str = "dimse") -> dict[str, Any] | None:
    response = platform.get(f"{DELIVERIES}/{destination}", params={"via": via})
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


def orthanc_pixels(orthanc: Orthanc) -> dict[str, bytes]:
    """SOP Instance UID -> PixelData of every instance Orthanc holds."""
    out: dict[str, bytes] = {}
    with httpx.Client(base_url=orthanc.url, timeout=30) as client:
        for instance in client.get("/instances").json():
            raw = client.get(f"/instances/{instance}/file").content
            ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw))
            out[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    return out


def sent_pixels(folder: Path) -> dict[str, bytes]:
    out = {}
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        out[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
    return out


# Acceptance 1 of issue 13 at full size: PACS_TEST_ROUTING_INSTANCES=500
# PACS_TEST_ROUTING_SIZE=512 (the suite sends 30 small images).
FIRST = int(os.environ.get("PACS_TEST_ROUTING_INSTANCES", "30"))
FIRST_SIZE = int(os.environ.get("PACS_TEST_ROUTING_SIZE", "64"))


async def test_rules_deliver_to_orthanc_through_an_outage(
    platform: Platform, orthancs: tuple[Orthanc, Orthanc], tmp_path: Path, dcmtk: None
) -> None:
    a, b = orthancs
    put(
        platform,
        "/api/nodes/route-a",
        {"ae_title": a.aet, "host": "127.0.0.1", "port": a.dicom_port},
    )
    put(
        platform,
        "/api/nodes/route-b",
        {"ae_title": b.aet, "host": "127.0.0.1", "port": b.dicom_port,
         "dicomweb_url": f"{b.url}/dicom-web"},
    )  # fmt: skip
    put(
        platform,
        f"{RULES}/route-ct-dimse",
        {"match": {"Modality": "CT", "CallingAE": "ROUTESRC"}, "destinations": ["route-a"]},
    )
    put(
        platform,
        f"{RULES}/route-ct-stow",
        {"match": {"Modality": "CT", "CallingAE": "ROUTESRC"}, "destinations": ["route-b"],
         "via": "stow"},
    )  # fmt: skip
    put(platform, f"{RULES}/route-mr", {"match": {"Modality": "MR"}, "destinations": ["route-a"]})
    await asyncio.sleep(REFRESH_SECONDS + 0.5)  # rules apply to what arrives after they do
    try:
        first = tmp_path / "first"
        write_series(first, ct_series(FIRST, size=FIRST_SIZE, patient_id="ROUTE-1"))
        store(platform, first)
        wait = 90 + FIRST * FIRST_SIZE**2 * 2 / 2e6  # and a second per 2 MB past the 30 small
        await eventually(lambda: a.instance_count() == FIRST == b.instance_count(), wait)
        sent = sent_pixels(first)
        assert orthanc_pixels(a) == sent  # C-STORE: every instance, pixel data identical
        assert orthanc_pixels(b) == sent  # STOW-RS: the same

        # A goes down during the next study; B keeps being served meanwhile.
        a.stop()
        second = tmp_path / "second"
        write_series(second, ct_series(20, size=64, patient_id="ROUTE-2"))
        store(platform, second)
        await eventually(lambda: b.instance_count() == FIRST + 20, 90)

        def waiting() -> dict[str, Any] | None:
            state = delivery(platform, "route-a")
            return state if state and state["queued"] == 20 and state["last_error"] else None

        held = await eventually(waiting, 60)
        assert held["failing_since"] and held["next_attempt_at"]
        a.start()
        await eventually(lambda: a.instance_count() == FIRST + 20, 120)
        assert orthanc_pixels(a) == sent | sent_pixels(second)  # none lost, none twice
        # Orthanc holds them a moment before the batch is recorded as delivered.
        done = await eventually(
            lambda: (
                (s := delivery(platform, "route-a")) and s["delivered_total"] == FIRST + 20 and s
            ),
            30,
        )
        assert done["queued"] == 0 and done["dead_letters"] == [] and done["last_error"] == ""

        # Pause holds the queue; resume sends it.
        paused = platform.post(f"{DELIVERIES}/route-a/pause")
        assert paused.status_code == 200, paused.text
        third = tmp_path / "third"
        write_series(third, ct_series(3, size=64, patient_id="ROUTE-3"))
        store(platform, third)
        await eventually(lambda: (delivery(platform, "route-a") or {}).get("queued") == 3, 30)
        time.sleep(2)
        assert a.instance_count() == FIRST + 20
        assert platform.post(f"{DELIVERIES}/route-a/resume").status_code == 200
        await eventually(lambda: a.instance_count() == FIRST + 23, 60)

        listed = {(d["destination"], d["via"]) for d in platform.get(DELIVERIES).json()}
        assert {("route-a", "dimse"), ("route-b", "stow")} <= listed
    finally:
        for rule in ("route-ct-dimse", "route-ct-stow", "route-mr"):
            platform.client().delete(f"{RULES}/{rule}")


class StoreScp:
    def __init__(self, folder: Path, port: int, unique: bool = False) -> None:
        self.folder, self.port = folder, port
        # Unique file names: a copy received twice is two files.
        self.options = ["-uf"] if unique else []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["storescp", "-aet", "DEADEND", *self.options, "-od", str(self.folder), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)


async def test_undeliverable_instances_become_dead_letters_and_replay_delivers_them(
    platform: Platform, tmp_path: Path, dcmtk: None
) -> None:
    port = free_port()
    put(
        platform,
        "/api/nodes/route-dead",
        {"ae_title": "DEADEND", "host": "127.0.0.1", "port": port},
    )
    put(
        platform,
        f"{RULES}/route-dead",
        {"match": {"CallingAE": "ROUTEDEAD"}, "destinations": ["route-dead"],
         "max_age_seconds": 3},
    )  # fmt: skip
    scp = StoreScp(tmp_path / "scp", port)
    await asyncio.sleep(REFRESH_SECONDS + 0.5)
    try:
        folder = tmp_path / "dead"
        write_series(folder, ct_series(5, size=64, patient_id="ROUTE-DEAD"))
        host, dicom_port = platform.dicom
        result = run(
            [
                "storescu",
                "-aet",
                "ROUTEDEAD",
                "-aec",
                "PACS",
                "+sd",
                host,
                str(dicom_port),
                str(folder),
            ]
        )
        assert result.returncode == 0, result.stderr

        def dead() -> dict[str, Any] | None:
            state = delivery(platform, "route-dead")
            return state if state and len(state["dead_letters"]) == 5 else None

        state = await eventually(dead, 60)
        assert state["queued"] == 0
        assert all(d["reason"] for d in state["dead_letters"])
        # Dead letters name the study: reading them is an audited access to it.
        study = state["dead_letters"][0]["item"]["instance"]["study_instance_uid"]

        def read_audited() -> bool:
            params = {"action": "deliveries", "StudyInstanceUID": study, "limit": 100}
            return bool(platform.get("/api/audit/access", params=params).json()["entries"])

        await eventually(read_audited, 30)

        # The dead letters show in the state as they are made; their event follows.
        def failed_event() -> bool:
            params = {"type": "pacs.route.failed", "limit": 1000}
            events = platform.get("/api/audit/events", params=params).json()
            return any(e["client"] == "route-dead" for e in events)

        await eventually(failed_event, 30)

        scp.start()
        assert platform.post(f"{DELIVERIES}/route-dead/replay").status_code == 200
        await eventually(lambda: len(list((tmp_path / "scp").glob("*"))) == 5, 60)
        await eventually(
            lambda: (delivery(platform, "route-dead") or {}).get("delivered_total") == 5, 30
        )
        assert (delivery(platform, "route-dead") or {}).get("dead_letters") == []
        assert platform.post(f"{DELIVERIES}/nobody-here/replay").status_code == 404
    finally:
        scp.stop()
        platform.client().delete(f"{RULES}/route-dead")


async def test_a_study_rule_sends_once_the_study_is_stable(
    platform: Platform, tmp_path: Path, dcmtk: None
) -> None:
    port = free_port()
    node = {"ae_title": "STUDYEND", "host": "127.0.0.1", "port": port}
    put(platform, "/api/nodes/route-study", node)
    rule = {"match": {"CallingAE": "ROUTESTUDY"}, "destinations": ["route-study"], "on": "study"}
    put(platform, f"{RULES}/route-study", rule)
    await asyncio.sleep(REFRESH_SECONDS + 0.5)
    scp = StoreScp(tmp_path / "scp", port)
    scp.start()
    try:
        folder = tmp_path / "study"
        write_series(folder, ct_series(6, size=64, patient_id="ROUTE-STUDY"))
        host, dicom_port = platform.dicom
        argv = ["storescu", "-aet", "ROUTESTUDY", "-aec", "PACS", "+sd", host, str(dicom_port)]
        result = run([*argv, str(folder)])
        assert result.returncode == 0, result.stderr
        stored_at = time.monotonic()
        # Held while the study may still grow (stable after 3 s on the test platform)...
        held = await eventually(
            lambda: (delivery(platform, "route-study") or {}).get("held") == 6, 30
        )
        assert held and not list((tmp_path / "scp").glob("*"))
        # ...then sent, all six.
        await eventually(lambda: len(list((tmp_path / "scp").glob("*"))) == 6, 60)
        assert time.monotonic() - stored_at >= platform.settings.ingest.stable_after_seconds
        # The files are there a moment before the batch is recorded as delivered.
        await eventually(
            lambda: (delivery(platform, "route-study") or {}).get("delivered_total") == 6, 30
        )
        assert (delivery(platform, "route-study") or {}).get("held") == 0
    finally:
        scp.stop()
        platform.client().delete(f"{RULES}/route-study")


async def test_a_de_identifying_rule_sends_a_copy_and_a_windowed_rule_waits(
    platform: Platform, tmp_path: Path, dcmtk: None
) -> None:
    port = free_port()
    put(
        platform,
        "/api/nodes/route-anon",
        {"ae_title": "ANONEND", "host": "127.0.0.1", "port": port},
    )
    put(
        platform,
        f"{RULES}/route-anon",
        {"match": {"CallingAE": "ROUTEANON"}, "destinations": ["route-anon"], "deidentify": True},
    )
    # A window that is closed now (it opens in two hours, platform time): queued, not sent.
    now = datetime.now(ZoneInfo(platform.settings.federation.timezone))
    window = {
        "start": (now + timedelta(hours=2)).strftime("%H:%M"),
        "end": (now + timedelta(hours=3)).strftime("%H:%M"),
    }
    put(
        platform, "/api/nodes/route-night", {"ae_title": "NIGHT", "host": "127.0.0.1", "port": port}
    )
    put(
        platform,
        f"{RULES}/route-night",
        {"match": {"CallingAE": "ROUTEANON"}, "destinations": ["route-night"], "window": window},
    )
    await asyncio.sleep(REFRESH_SECONDS + 0.5)
    scp = StoreScp(tmp_path / "scp", port)
    scp.start()
    try:
        folder = tmp_path / "anon"
        write_series(folder, ct_series(4, size=64, patient_id="ROUTE-ANON-PID"))
        host, dicom_port = platform.dicom
        argv = ["storescu", "-aet", "ROUTEANON", "-aec", "PACS", "+sd", host, str(dicom_port)]
        result = run([*argv, str(folder)])
        assert result.returncode == 0, result.stderr
        await eventually(lambda: len(list((tmp_path / "scp").glob("*"))) == 4, 60)
        originals = {
            str(pydicom.dcmread(p).SOPInstanceUID): pydicom.dcmread(p) for p in folder.iterdir()
        }
        copies = [pydicom.dcmread(p) for p in (tmp_path / "scp").iterdir()]
        for copy in copies:
            assert copy.PatientIdentityRemoved == "YES"
            assert str(copy.PatientID).startswith("ANON")
            assert "Test" not in str(copy.PatientName)  # "Test^Patient" as stored
            assert str(copy.SOPInstanceUID) not in originals  # keyed UIDs, not the originals
        # The pixels went unchanged; the stored originals were not touched.
        assert sorted(bytes(c.PixelData) for c in copies) == sorted(
            bytes(o.PixelData) for o in originals.values()
        )
        found = platform.get("/dicom-web/studies", params={"PatientID": "ROUTE-ANON-PID"})
        assert found.status_code == 200 and len(found.json()) == 1  # stored as received

        night = await eventually(
            lambda: (s := delivery(platform, "route-night")) and s["queued"] == 4 and s, 30
        )
        assert night["delivered_total"] == 0 and night["last_error"] == ""
        opens = datetime.fromisoformat(night["next_attempt_at"])
        assert timedelta(hours=1, minutes=58) < opens - datetime.now(UTC) <= timedelta(hours=2)
    finally:
        scp.stop()
        for rule in ("route-anon", "route-night"):
            platform.client().delete(f"{RULES}/{rule}")


async def test_a_worker_killed_mid_delivery_resends_at_most_the_batch_in_flight(
    platform: Platform, tmp_path: Path, dcmtk: None
) -> None:
    port = free_port()
    node = {"ae_title": "KILLEND", "host": "127.0.0.1", "port": port}
    put(platform, "/api/nodes/route-kill", node)
    put(
        platform,
        f"{RULES}/route-kill",
        {"match": {"CallingAE": "ROUTEKILL"}, "destinations": ["route-kill"]},
    )
    await asyncio.sleep(REFRESH_SECONDS + 0.5)
    scp = StoreScp(tmp_path / "scp", port, unique=True)
    scp.start()
    count = 300
    try:
        folder = tmp_path / "kill"
        write_series(folder, ct_series(count, size=128, patient_id="ROUTE-KILL"))
        host, dicom_port = platform.dicom
        argv = ["storescu", "-aet", "ROUTEKILL", "-aec", "PACS", "+sd", host, str(dicom_port)]
        result = run([*argv, str(folder)])
        assert result.returncode == 0, result.stderr
        received = tmp_path / "scp"
        await eventually(lambda: len(list(received.glob("*"))) >= 1, 60, interval=0.02)
        worker = next(p for p in platform.stack.app_processes() if p.name == "worker")
        worker.kill()  # SIGKILL, mid-delivery
        at_kill = len(list(received.glob("*")))
        assert at_kill < count, "the kill must land mid-delivery"
        worker.start()
        await eventually(lambda: len(list(received.glob("*"))) >= count, 120)
        await asyncio.sleep(3)  # a late duplicate would show by now
        sops = [
            str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for p in received.iterdir()
        ]
        assert set(sops) == set(sent_pixels(folder))  # every instance, none lost
        assert len(sops) - len(set(sops)) <= 50  # at most the batch in flight sent again
    finally:
        scp.stop()
        platform.client().delete(f"{RULES}/route-kill")
