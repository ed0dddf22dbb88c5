"""Multi-node sync on real platforms: two instances of ours, each with studies the other
lacks (one study half on one side, one with the same number of instances on each side but
in different series), hold the union after one run, the same instances with the same
bytes; then the second against Debian's Orthanc, the same. Compared instance by instance,
the same SOP Instance UID with different content on the two sides is a conflict, which
the relation's policy keeps, or settles where the receiving side's duplicate policy lets
it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from tests.dicom_factory import ct_series, part10_bytes
from tests.integration.conftest import (
    Platform,
    eventually,
    platform_settings,
    run,
    running_platform,
)
from tests.orthanc import Orthanc
from tests.ports import free_port

pytestmark = pytest.mark.integration


async def site(folder: Path, base: int, ae_title: str, **ingest: Any) -> AsyncIterator[Platform]:
    """A platform of its own (not the session's, which holds every other test's studies)."""
    settings = platform_settings(folder, base=base, **ingest)
    dicom = settings.dicom.model_copy(update={"ae_title": ae_title})
    async with running_platform(settings.model_copy(update={"dicom": dicom})) as node:
        yield node


@pytest.fixture
async def site_a(tmp_path: Path) -> AsyncIterator[Platform]:
    async for node in site(tmp_path / "site-a", 12000, "PACSA"):
        yield node


@pytest.fixture
async def site_b(tmp_path: Path) -> AsyncIterator[Platform]:
    # B lets a different version of an instance replace the one it holds; A (the default)
    # refuses it.
    async for node in site(tmp_path / "site-b", 18000, "PACSB", duplicate_policy="overwrite"):
        yield node


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    peer = Orthanc(tmp_path / "o", free_port(), free_port(), aet="SYNCORTHANC")
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


def store(platform: Platform, folder: Path, datasets: list[pydicom.Dataset]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for ds in datasets:
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    host, port = platform.dicom
    aec = platform.settings.dicom.ae_title
    sent = run(["storescu", "-aec", aec, "+sd", host, str(port), str(folder)])
    assert sent.returncode == 0, sent.stderr


def dataset_digest(part10: bytes) -> str:
    """SHA-256 of the data set as encoded, after the File Meta group: that group is each
    receiver's own (its implementation, the AE title it came from), the rest is the
    object's bytes as they travelled."""
    assert part10[128:132] == b"DICM"
    meta_length = int.from_bytes(part10[140:144], "little")  # (0002,0000) UL value
    return hashlib.sha256(part10[144 + meta_length :]).hexdigest()


def holdings(platform: Platform, studies: list[str]) -> dict[str, dict[str, str]]:
    """Study -> SOP Instance UID -> digest of the data set WADO-RS gives, of these studies."""
    out: dict[str, dict[str, str]] = {}
    for study in studies:
        listed = platform.get(f"/dicom-web/studies/{study}/instances")
        if listed.status_code != 200 or not listed.json():
            continue  # not here (an empty answer, or 204/404)
        out[study] = {}
        for item in listed.json():
            series, sop = item["0020000E"]["Value"][0], item["00080018"]["Value"][0]
            raw = platform.get(
                f"/dicom-web/studies/{study}/series/{series}/instances/{sop}",
                headers={"Accept": "application/dicom"},
            )
            assert raw.status_code == 200
            out[study][sop] = dataset_digest(raw.content)
    return out


def completed_runs(platform: Platform, name: str) -> list[dict[str, Any]]:
    history = platform.get(f"/api/sync/relations/{name}/history")
    assert history.status_code == 200, history.text
    return [h for h in history.json() if h["status"] == "Completed"]


async def run_sync(platform: Platform, name: str) -> dict[str, Any]:
    before = len(completed_runs(platform, name))
    started = platform.post(f"/api/sync/relations/{name}/run")
    assert started.status_code == 202, started.text

    def finished() -> dict[str, Any] | None:
        done = completed_runs(platform, name)
        return done[0]["result"] if len(done) > before else None  # newest first

    result: dict[str, Any] = await eventually(finished, 180)
    return result


def upload(orthanc: Orthanc, datasets: list[pydicom.Dataset]) -> None:
    with httpx.Client(base_url=orthanc.url, timeout=30) as client:
        for ds in datasets:
            assert client.post("/instances", content=part10_bytes(ds)).status_code == 200


def orthanc_digests(orthanc: Orthanc, sops: list[str]) -> dict[str, str]:
    """SOP Instance UID -> digest of the data set in the file Orthanc holds."""
    out = {}
    with httpx.Client(base_url=orthanc.url, timeout=30) as client:
        for sop in sops:
            found = client.post("/tools/lookup", content=sop).json()
            raw = client.get(f"/instances/{found[0]['ID']}/file").content
            out[sop] = dataset_digest(raw)
    return out


def series_of(count: int, patient: str) -> list[pydicom.Dataset]:
    return list(ct_series(count, size=32, patient_id=patient))


async def conflicts_are_kept_refused_or_settled(a: Platform, b: Platform, tmp_path: Path) -> str:
    """The same instance with other content at B (stored later): compared instance by
    instance, keep-both records it and changes nothing; prefer-newer sends B's version
    here, which A's duplicate policy (reject) refuses; prefer-here sends A's to B, which
    (overwrite) takes it. Every conflict is an event."""
    original = series_of(2, "SYNC-C")
    store(a, tmp_path / "ca", original)
    study, sop = str(original[0].StudyInstanceUID), str(original[0].SOPInstanceUID)
    await eventually(lambda: len(holdings(a, [study]).get(study, {})) == 2, 30)
    other = pydicom.dcmread(tmp_path / "ca" / f"{sop}.dcm")
    other.ImageComments = "re-processed at site B"
    store(b, tmp_path / "cb", [other, original[1]])
    await eventually(lambda: len(holdings(b, [study]).get(study, {})) == 2, 30)
    assert holdings(a, [study])[study][sop] != holdings(b, [study])[study][sop]
    listed = b.get(f"/api/studies/{study}/storage").json()  # from the catalog: no reading
    assert [(i["sop_instance_uid"], len(i["sha256"]), i["dataset_sha256"]) for i in listed] == [
        (str(d.SOPInstanceUID), 64, None) for d in original
    ]

    key = b.client().post("/api/api-keys", json={"name": "sync from A", "roles": ["integration"]})
    assert key.status_code == 201, key.text
    node = a.get("/api/nodes/site-b").json()
    node.pop("name"), node.pop("health")
    node["api_key"] = key.json()["api_key"]
    assert a.client().put("/api/nodes/site-b", json=node).status_code == 200
    shown = a.get("/api/nodes/site-b").json()
    assert shown["api_key_sealed"] and key.json()["api_key"] not in str(shown)

    relation = {"node": "site-b", "pull_via": "wado", "push_via": "stow", "compare": "instances"}
    details = {}
    for policy, resolution in (
        ("keep-both", "kept-both"),
        ("prefer-newer", "refused"),  # B's is newer; A refuses a second version
        ("prefer-here", "sent-there"),  # B takes A's
    ):
        saved = a.client().put("/api/sync/relations/deep", json={**relation, "conflicts": policy})
        assert saved.status_code == 200, saved.text
        result = await run_sync(a, "deep")
        [found] = [c for c in result["conflicts"] if c["study_instance_uid"] == study]
        assert (found["sop_instance_uid"], found["resolution"]) == (sop, resolution), found
        assert result["failed"] == []
        details[resolution] = found["detail"]
    assert "duplicate policy: reject" in details["refused"], details  # A's answer, as it came
    a_now = holdings(a, [study])[study]
    assert a_now[sop] == dataset_digest((tmp_path / "ca" / f"{sop}.dcm").read_bytes())
    await eventually(lambda: holdings(b, [study])[study] == a_now, 30)

    def recorded() -> list[dict[str, Any]]:
        params = {"type": "pacs.sync.conflict", "limit": 100}
        return [
            e
            for e in a.get("/api/audit/events", params=params).json()
            if e["sop_instance_uid"] == sop
        ]

    assert len(await eventually(lambda: (r := recorded()) and len(r) == 3 and r, 30)) == 3
    settled = await run_sync(a, "deep")
    assert [c for c in settled["conflicts"] if c["study_instance_uid"] == study] == []
    a.client().delete("/api/sync/relations/deep")
    return study


async def test_two_sites_and_orthanc_converge_on_the_union(
    site_a: Platform, site_b: Platform, orthanc: Orthanc, tmp_path: Path, dcmtk: None
) -> None:
    platform = site_a
    only_a, only_b, half = series_of(3, "SYNC-A"), series_of(2, "SYNC-B"), series_of(3, "SYNC-H")
    # Two instances each side, of different series: the study counts agree.
    split_a = series_of(2, "SYNC-S")
    split_b = list(ct_series(2, size=32, study_uid=str(split_a[0].StudyInstanceUID),
                             patient_id="SYNC-S"))  # fmt: skip
    store(platform, tmp_path / "a", only_a + half[:2] + split_a)
    store(site_b, tmp_path / "b", only_b + half + split_b)
    studies = [str(s[0].StudyInstanceUID) for s in (only_a, only_b, half, split_a)]
    await eventually(lambda: len(holdings(platform, studies)) == 3, 30)
    await eventually(lambda: len(holdings(site_b, studies)) == 3, 30)

    b = site_b.settings.dicom
    node = {"ae_title": b.ae_title, "host": b.host, "port": b.port,
            "dicomweb_url": f"{site_b.http}/dicom-web"}  # fmt: skip
    assert platform.client().put("/api/nodes/site-b", json=node).status_code == 200
    relation = {"node": "site-b", "direction": "both", "pull_via": "c-get", "push_via": "dimse"}
    saved = platform.client().put("/api/sync/relations/with-b", json=relation)
    assert saved.status_code == 200, saved.text
    try:
        result = await run_sync(platform, "with-b")
        # B's own, the half one and the split one (its series B has) come here; A's own and
        # the split one's other series go there.
        assert sorted(result["pulled"]) == sorted(studies[1:])
        assert sorted(result["pushed"]) == sorted([studies[0], studies[3]])
        assert (result["series_pulled"], result["series_pushed"]) == (2, 1)
        assert result["failed"] == [] and result["same"] == 0

        def converged(platform: Platform) -> dict[str, dict[str, str]] | None:
            h = holdings(platform, studies)
            complete = len(h) == 4 and len(h[studies[2]]) == 3 and len(h[studies[3]]) == 4
            return h if complete else None

        here = await eventually(lambda: converged(platform), 30)
        there = await eventually(lambda: converged(site_b), 30)
        assert here == there  # the same instances, byte for byte, on both sides
        assert {sop: 1 for sop in here[studies[0]]} == {str(d.SOPInstanceUID): 1 for d in only_a}
        again = await run_sync(platform, "with-b")
        assert (again["pulled"], again["pushed"], again["same"]) == ([], [], 4)

        # Reading the history names the studies moved: each an audited access.
        def history_audited() -> bool:
            params = {"action": "sync-history", "StudyInstanceUID": studies[0], "limit": 100}
            entries = platform.get("/api/audit/access", params=params).json()["entries"]
            return bool(entries)

        await eventually(history_audited, 30)
        studies.append(await conflicts_are_kept_refused_or_settled(platform, site_b, tmp_path))
    finally:
        platform.client().delete("/api/sync/relations/with-b")

    # Site B against Orthanc: Orthanc has a study of its own; B has the five.
    own = series_of(2, "SYNC-O")
    upload(orthanc, own)
    peer = {"ae_title": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port}
    assert site_b.client().put("/api/nodes/orthanc", json=peer).status_code == 200
    relation = {"node": "orthanc", "direction": "both", "pull_via": "c-get"}
    assert site_b.client().put("/api/sync/relations/with-orthanc", json=relation).status_code == 200
    result = await run_sync(site_b, "with-orthanc")
    assert result["pulled"] == [str(own[0].StudyInstanceUID)]
    assert sorted(result["pushed"]) == sorted(studies) and result["failed"] == []
    assert orthanc.instance_count() == 3 + 2 + 3 + 4 + 2 + 2
    everything = [*studies, str(own[0].StudyInstanceUID)]
    at_b = await eventually(lambda: (h := holdings(site_b, everything)) and len(h) == 6 and h, 30)
    for sops in at_b.values():
        assert orthanc_digests(orthanc, list(sops)) == sops  # identical at Orthanc
    # Nothing left to move: a second run moves nothing.
    again = await run_sync(site_b, "with-orthanc")
    assert (again["pulled"], again["pushed"], again["same"]) == ([], [], 6)
