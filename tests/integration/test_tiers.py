"""Storage tiers on the real servers: hot and warm are SeaweedFS buckets, cold is an Azure
Blob container on Azurite. A study moved hot → warm by hand and warm → cold by a storage
rule is listed in each tier by `…/storage`, read back byte for byte by WADO-RS and C-GET
from each, counted per tier in the API and /metrics; a worker SIGKILLed mid-move leaves
exactly one verified copy of each instance once the move has finished."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from azure.storage.blob import ContainerClient
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
)

from infra.dimse.nodelay import set_nodelay
from infra.settings import TierSettings
from infra.storage.archive import make_minio
from tests.azurite import Azurite
from tests.dicom_factory import ct_series, part10_bytes
from tests.integration.conftest import (
    Platform,
    eventually,
    platform_settings,
    run,
    running_platform,
)
from tests.integration.test_deletion import send
from tests.integration.test_sync import dataset_digest
from tests.ports import free_port

pytestmark = pytest.mark.integration

COLD_CONTAINER = "pacs-cold"


@pytest.fixture(scope="module")
async def azurite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Azurite]:
    emulator = Azurite(tmp_path_factory.mktemp("azurite"), free_port())
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
async def tiered(
    tmp_path_factory: pytest.TempPathFactory, azurite: Azurite
) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp_path_factory.mktemp("tiers"), base=16000)
    settings.tiers.cold = TierSettings(
        backend="azure", bucket=COLD_CONTAINER, azure_connection_string=azurite.connection_string
    )
    async with running_platform(settings) as node:
        yield node


def storage(platform: Platform, study: str) -> list[dict[str, Any]]:
    answer = platform.get(f"/api/studies/{study}/storage")
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()
    return rows


async def in_tier(platform: Platform, study: str, tier: str, count: int) -> None:
    def tiers() -> list[str]:
        answer = platform.get(f"/api/studies/{study}/storage")
        return [r["tier"] for r in answer.json()] if answer.status_code == 200 else []

    await eventually(lambda: tiers() == [tier] * count, 60)


def hot_and_warm_keys(platform: Platform, study: str) -> dict[str, set[str]]:
    s3 = platform.settings.s3
    client = make_minio(s3)
    buckets = {"hot": s3.archive_bucket, "warm": platform.settings.tiers.warm.bucket}
    return {
        tier: {str(o.object_name) for o in client.list_objects(b, f"{study}/", recursive=True)}
        for tier, b in buckets.items()
    }


def cold_blobs(azurite: Azurite, study: str) -> dict[str, bytes]:
    container = ContainerClient.from_connection_string(azurite.connection_string, COLD_CONTAINER)
    return {
        str(b.name): container.download_blob(b.name).readall()
        for b in container.list_blobs(name_starts_with=f"{study}/")
    }


async def job_done(platform: Platform, url: str) -> dict[str, Any]:
    job: dict[str, Any] = await eventually(
        lambda: (j := platform.get(url).json())["status"] in ("Completed", "Failed") and j, 120
    )
    assert job["status"] == "Completed", job
    return job


def wado_bytes(platform: Platform, study: str, series: str, sop: str) -> bytes:
    url = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    answer = platform.get(url, headers={"Accept": "application/dicom"})
    assert answer.status_code == 200, answer.text
    return answer.content


def as_stored(platform: Platform, images: list[pydicom.Dataset]) -> dict[str, bytes]:
    """Each instance's bytes as the archive holds them (File Meta written by our receiver;
    the data set as sent)."""
    study = str(images[0].StudyInstanceUID)
    stored = {}
    for ds in images:
        sop = str(ds.SOPInstanceUID)
        stored[sop] = wado_bytes(platform, study, str(ds.SeriesInstanceUID), sop)
        assert dataset_digest(stored[sop]) == dataset_digest(part10_bytes(ds))
    return stored


def check_reads(
    platform: Platform, images: list[pydicom.Dataset], sent: dict[str, bytes], tmp: Path
) -> None:
    """WADO-RS gives each instance's bytes as stored; C-GET (DCMTK getscu) every instance
    with its pixel data as sent."""
    study = str(images[0].StudyInstanceUID)
    for ds in images:
        sop = str(ds.SOPInstanceUID)
        assert wado_bytes(platform, study, str(ds.SeriesInstanceUID), sop) == sent[sop]
    host, port = platform.dicom
    tmp.mkdir(parents=True, exist_ok=True)
    got = run(["getscu", "-S", "-aet", "TIERGET", "-aec", "PACS", "-od", str(tmp),
               "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
               host, str(port)])  # fmt: skip
    assert got.returncode == 0, got.stderr
    received = {str(pydicom.dcmread(p).SOPInstanceUID): pydicom.dcmread(p) for p in tmp.iterdir()}
    assert set(received) == set(sent)
    for ds in images:
        assert received[str(ds.SOPInstanceUID)].PixelData == ds.PixelData


async def test_a_study_moves_hot_to_warm_to_cold_and_reads_the_same_from_each(
    tiered: Platform, azurite: Azurite, tmp_path: Path, dcmtk: None
) -> None:
    images = list(ct_series(4, size=32, patient_id="TIERS-1"))
    study = str(images[0].StudyInstanceUID)
    send(tiered, tmp_path / "in", images)
    await in_tier(tiered, study, "hot", 4)
    sent = as_stored(tiered, images)
    check_reads(tiered, images, sent, tmp_path / "got-hot")

    # By hand: hot → warm.
    client = tiered.client()
    assert client.post(f"/api/studies/{study}/migrate", json={"tier": "tepid"}).status_code == 422
    assert client.post("/api/studies/1.2.3.4/migrate", json={"tier": "warm"}).status_code == 404
    moved = client.post(f"/api/studies/{study}/migrate", json={"tier": "warm"})
    assert moved.status_code == 202, moved.text
    job = await job_done(tiered, moved.json()["status_url"])
    assert job["result"]["moved"] == 4 and job["keys"]["StudyInstanceUID"] == study
    await in_tier(tiered, study, "warm", 4)
    keys = hot_and_warm_keys(tiered, study)
    assert keys["hot"] == set() and len(keys["warm"]) == 4
    check_reads(tiered, images, sent, tmp_path / "got-warm")

    # By a rule with a short age: warm → cold (Azure, on Azurite). A dry run first.
    rule = {"to_tier": "cold", "received_more_than_days": 1 / 86400, "modalities": ["CT"]}
    assert client.put("/api/storage/rules/ct-to-cold", json=rule).status_code in (200, 201)
    assert client.put("/api/storage/rules/no-age", json={"to_tier": "cold"}).status_code == 422
    dry = client.post("/api/storage/apply-rules", json={"dry_run": True})
    assert dry.status_code == 200, dry.text
    assert {"rule": "ct-to-cold", "to_tier": "cold", "study_instance_uid": study,
            "patient_id": "TIERS-1"} in dry.json()["matched"]  # fmt: skip
    assert [r["tier"] for r in storage(tiered, study)] == ["warm"] * 4  # a dry run moves nothing
    run_rules = client.post("/api/storage/apply-rules", json={"dry_run": False})
    assert run_rules.status_code == 202, run_rules.text
    result = (await job_done(tiered, run_rules.json()["status_url"]))["result"]
    assert result["moved"] >= 1 and not result["failed"]
    await in_tier(tiered, study, "cold", 4)
    assert client.delete("/api/storage/rules/ct-to-cold").status_code in (200, 204)
    blobs = cold_blobs(azurite, study)
    assert sorted(hashlib.sha256(b).hexdigest() for b in blobs.values()) == sorted(
        hashlib.sha256(b).hexdigest() for b in sent.values()
    )
    assert hot_and_warm_keys(tiered, study) == {"hot": set(), "warm": set()}
    check_reads(tiered, images, sent, tmp_path / "got-cold")

    # Usage per tier, in the API and in /metrics; each move in the audit trail.
    usage = {u["tier"]: u for u in client.get("/api/storage/tiers").json()}
    assert (
        usage["cold"]["instances"] >= 4 and usage["cold"]["location"] == f"azure://{COLD_CONTAINER}"
    )
    assert usage["cold"]["bytes"] >= sum(len(b) for b in sent.values())
    metrics = await eventually(
        lambda: (
            (m := client.get("/metrics").text)
            and 'pacs_storage_tier_instances{tier="cold"}' in m
            and m
        ),
        30,
    )
    assert 'pacs_storage_tier_bytes{tier="cold"}' in metrics
    migrated = tiered.audit(study, "pacs.instance.migrated")
    assert len(migrated) == 8  # 4 to warm, 4 to cold


async def test_a_worker_killed_mid_move_leaves_one_verified_copy_of_each(
    tiered: Platform, azurite: Azurite, tmp_path: Path, dcmtk: None
) -> None:
    images = list(ct_series(40, size=64, patient_id="TIERS-2"))
    study = str(images[0].StudyInstanceUID)
    send(tiered, tmp_path / "in", images)
    await in_tier(tiered, study, "hot", 40)
    sent = as_stored(tiered, images)
    client = tiered.client()
    moved = client.post(f"/api/studies/{study}/migrate", json={"tier": "cold"})
    assert moved.status_code == 202, moved.text
    again = client.post(f"/api/studies/{study}/migrate", json={"tier": "warm"})
    assert again.status_code == 409  # one move of a study at a time
    # Mid-move: some instances copied to cold, the page not yet announced or cleaned up.
    await eventually(lambda: len(cold_blobs(azurite, study)) > 0, 30, interval=0.05)
    [worker] = [p for p in tiered.stack.app_processes() if p.name == "worker"]
    worker.kill()
    # Sources are removed only after the whole page is copied and announced.
    assert hot_and_warm_keys(tiered, study)["hot"], "the kill must land mid-move"
    worker.start()
    await job_done(tiered, moved.json()["status_url"])
    await in_tier(tiered, study, "cold", 40)
    blobs = cold_blobs(azurite, study)
    assert {k.rsplit("/", 1)[1].removesuffix(".dcm") for k in blobs} == set(sent)
    for key, data in blobs.items():
        assert data == sent[key.rsplit("/", 1)[1].removesuffix(".dcm")]
    assert hot_and_warm_keys(tiered, study) == {"hot": set(), "warm": set()}


def slow_c_get(platform: Platform, study: str, delay: float) -> tuple[int, int]:
    """A C-GET of the study whose receiver takes `delay` seconds per instance: the final
    status and how many instances arrived."""
    received: list[str] = []

    def store(event: Any) -> int:
        time.sleep(delay)
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study
    ae = AE(ae_title="SLOWGET")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(
        *platform.dicom, ae_title="PACS",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, store), (evt.EVT_CONN_OPEN, set_nodelay)],
    )  # fmt: skip
    assert assoc.is_established
    try:
        responses = list(assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet))
    finally:
        assoc.release()
    return int(responses[-1][0].Status), len(received)


def lock_state(platform: Platform, study: str) -> dict[str, Any]:
    answer = platform.get(f"/api/studies/{study}/lock")
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


async def test_a_move_waits_for_a_retrieve_under_way_and_an_admin_can_release_it(
    tiered: Platform, azurite: Azurite, tmp_path: Path, dcmtk: None
) -> None:
    images = list(ct_series(10, size=32, patient_id="TIERS-3"))
    study = str(images[0].StudyInstanceUID)
    send(tiered, tmp_path / "in", images)
    await in_tier(tiered, study, "hot", 10)
    client = tiered.client()

    # A C-GET that takes ~5 s holds the study: the move waits for it, moving nothing.
    retrieve = asyncio.create_task(asyncio.to_thread(slow_c_get, tiered, study, 0.5))
    await eventually(lambda: lock_state(tiered, study)["holders"], 20, interval=0.1)
    moved = client.post(f"/api/studies/{study}/migrate", json={"tier": "warm"})
    assert moved.status_code == 202, moved.text
    state = await eventually(lambda: (s := lock_state(tiered, study))["waiting"] and s, 20)
    assert [h["owner"] for h in state["holders"]] == ["c-get:SLOWGET"]
    assert state["holders"][0]["mode"] == "shared"
    assert [w["owner"] for w in state["waiting"]] == [f"migrate:{study}"]
    job = client.get(moved.json()["status_url"]).json()
    assert job["progress"]["stage"] == "waiting for the study lock"
    assert hot_and_warm_keys(tiered, study)["warm"] == set()
    status, count = await retrieve
    assert (status, count) == (0x0000, 10)
    await job_done(tiered, moved.json()["status_url"])
    await in_tier(tiered, study, "warm", 10)

    # A retrieve that holds the study too long: the admin releases it, the move goes on,
    # and the retrieve still delivers every instance (reads find them in either tier).
    retrieve = asyncio.create_task(asyncio.to_thread(slow_c_get, tiered, study, 1.0))
    await eventually(lambda: lock_state(tiered, study)["holders"], 20, interval=0.1)
    moved = client.post(f"/api/studies/{study}/migrate", json={"tier": "hot"})
    await eventually(lambda: lock_state(tiered, study)["waiting"], 20)
    released = client.post(f"/api/studies/{study}/lock/release")
    assert released.status_code == 200, released.text
    assert [g["owner"] for g in released.json()["released"]] == ["c-get:SLOWGET"]
    await job_done(tiered, moved.json()["status_url"])
    assert not retrieve.done()  # moved while the retrieve was still sending
    assert await retrieve == (0x0000, 10)
    await in_tier(tiered, study, "hot", 10)
    entries = tiered.get("/api/audit/access", params={"StudyInstanceUID": study}).json()
    assert any(e["action"] == "lock-release" for e in entries["entries"])
