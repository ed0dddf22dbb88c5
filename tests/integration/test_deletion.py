"""Deleting on the real platform: an instance, a series, then the study, each gone from
QIDO, C-FIND and WADO when the DELETE is answered; their bytes stay through the grace
period and are then purged from the archive, except an instance sent again meanwhile,
which is a new arrival: listed again, retrievable byte for byte, never purged. An IHE IOCM
rejection note does the same for the instances it lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest

from infra.storage.archive import make_minio
from tests.dicom_factory import ct_series, key_object_selection, part10_bytes
from tests.integration.conftest import Platform, eventually, run
from tests.integration.test_sync import dataset_digest

pytestmark = pytest.mark.integration


def send(platform: Platform, folder: Path, datasets: list[pydicom.Dataset]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for ds in datasets:
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    host, port = platform.dicom
    sent = run(["storescu", "-aet", "DELETER", "-aec", "PACS", "+sd", host, str(port), str(folder)])
    assert sent.returncode == 0, sent.stderr


def qido_instances(platform: Platform, study: str) -> list[str]:
    found = platform.get(f"/dicom-web/studies/{study}/instances")
    return [i["00080018"]["Value"][0] for i in found.json()] if found.status_code == 200 else []


def cfind_studies(platform: Platform, study: str, tmp_path: Path) -> int:
    host, port = platform.dicom
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    out = tmp_path / "find"
    out.mkdir(exist_ok=True)
    found = run(["findscu", "-S", "-X", "-od", str(out), "-aet", "DELETER", "-aec", "PACS",
                 *keys, host, str(port)])  # fmt: skip
    assert found.returncode == 0, found.stderr
    answers = list(out.glob("*"))
    for answer in answers:
        answer.unlink()
    return len(answers)


def archived(platform: Platform, study: str) -> set[str]:
    """The SOP Instance UIDs whose objects the archive bucket holds for the study."""
    s3 = platform.settings.s3
    objects = make_minio(s3).list_objects(s3.archive_bucket, f"{study}/", recursive=True)
    return {str(o.object_name).rsplit("/", 1)[-1].removesuffix(".dcm") for o in objects}


def delete(platform: Platform, path: str) -> dict[str, Any]:
    answer = platform.client().delete(path, params={"reason": "wrong patient"})
    assert answer.status_code == 202, answer.text
    accepted: dict[str, Any] = answer.json()
    return accepted


async def test_deleted_objects_vanish_at_once_and_are_purged_after_the_grace_period(
    platform: Platform, tmp_path: Path, dcmtk: None
) -> None:
    first = list(ct_series(3, size=32, patient_id="DELETE-1"))
    study = str(first[0].StudyInstanceUID)
    second = list(ct_series(2, size=32, study_uid=study, patient_id="DELETE-1"))
    send(platform, tmp_path / "in", first + second)
    await eventually(lambda: len(qido_instances(platform, study)) == 5, 30)
    one = first[0]
    series, sop = str(one.SeriesInstanceUID), str(one.SOPInstanceUID)
    wado = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"

    # One instance, then a series: gone the moment each DELETE is answered.
    gone = delete(platform, wado.replace("/dicom-web", "/api"))
    assert gone["instances"] == 1
    assert sop not in qido_instances(platform, study) and len(qido_instances(platform, study)) == 4
    assert platform.get(wado).status_code == 404
    other = str(second[0].SeriesInstanceUID)
    middle = delete(platform, f"/api/studies/{study}/series/{other}")
    assert middle["instances"] == 2
    assert len(qido_instances(platform, study)) == 2

    # The study: gone from QIDO, C-FIND, WADO at once.
    last = delete(platform, f"/api/studies/{study}")
    assert last["instances"] == 2 and last["status_url"].startswith("/api/jobs/delete:")
    assert platform.get("/dicom-web/studies", params={"StudyInstanceUID": study}).status_code in (
        200, 204,
    ) and not qido_instances(platform, study)  # fmt: skip
    assert platform.get(f"/dicom-web/studies/{study}").status_code == 404
    assert cfind_studies(platform, study, tmp_path) == 0
    assert platform.client().delete(f"/api/studies/{study}").status_code == 404

    # In the grace period the bytes are still there; one instance is sent again.
    # Archiving may still be under way.
    await eventually(lambda: len(archived(platform, study)) == 5, 60)
    send(platform, tmp_path / "again", [one])
    assert await eventually(lambda: qido_instances(platform, study) == [sop], 30)
    await eventually(lambda: cfind_studies(platform, study, tmp_path) == 1, 30)

    # After the grace period: every deleted object purged, the one sent again kept.
    for deletion in (gone, middle, last):
        job = await eventually(
            lambda d=deletion: (
                (j := platform.get(d["status_url"]).json())["status"] == "Completed" and j
            ),
            120,
        )
        assert job["type"] == "DeletionWorkflow"
    assert await eventually(lambda: archived(platform, study) == {sop}, 60)
    s3 = platform.settings.s3
    left = make_minio(s3).list_objects(s3.archive_bucket, f"tombstones/{study}/", recursive=True)
    assert [o.object_name for o in left if not o.is_dir] == []
    raw = platform.get(wado, headers={"Accept": "application/dicom"})
    assert raw.status_code == 200
    assert dataset_digest(raw.content) == dataset_digest(
        (tmp_path / "again" / f"{sop}.dcm").read_bytes()
    )

    # Each deletion is audited and on the log.
    params = {"action": "delete", "StudyInstanceUID": study, "limit": 100}
    entries = platform.get("/api/audit/access", params=params).json()["entries"]
    assert len(entries) == 3 + 1  # the three deletions, and the refused fourth
    events = platform.get("/api/audit/events", params={"limit": 1000,
                          "type": "pacs.instances.purged"}).json()  # fmt: skip
    assert {e["study_instance_uid"] for e in events} >= {study}


async def test_a_rejection_note_deletes_exactly_the_instances_it_lists(
    platform: Platform, tmp_path: Path, dcmtk: None
) -> None:
    first = list(ct_series(4, size=32, patient_id="IOCM-1"))
    study = str(first[0].StudyInstanceUID)
    second = list(ct_series(2, size=32, study_uid=study, patient_id="IOCM-1"))
    send(platform, tmp_path / "in", first + second)
    await eventually(lambda: len(qido_instances(platform, study)) == 6, 30)
    rejected = [first[0], first[2], second[1]]
    kept = {str(ds.SOPInstanceUID) for ds in (first[1], first[3], second[0])}

    # An IOCM "Rejected for Quality Reasons" note, sent by DCMTK's storescu like any object.
    note = key_object_selection(rejected)
    send(platform, tmp_path / "note", [note])
    remaining = kept | {str(note.SOPInstanceUID)}
    assert await eventually(lambda: set(qido_instances(platform, study)) == remaining, 60)
    for ds in rejected:
        wado = f"/dicom-web/studies/{study}/series/{ds.SeriesInstanceUID}/instances/"
        assert platform.get(wado + str(ds.SOPInstanceUID)).status_code == 404
    [row] = platform.get("/dicom-web/studies", params={"StudyInstanceUID": study}).json()
    assert row["00201208"]["Value"] == [4]
    job = await eventually(
        lambda: (
            (j := platform.get(f"/api/jobs/iocm:{note.SOPInstanceUID}").json()).get("status")
            == "Completed"
            and j
        ),
        60,
    )
    assert job["type"] == "RejectionWorkflow"

    # Recorded as two deletions (one per series), made by the note's sender.
    params = {"limit": 100, "type": "pacs.instances.deleted", "StudyInstanceUID": study}
    events = platform.get("/api/audit/events", params=params).json()
    assert len(events) == 2
    assert {e["client"] for e in events} == {"iocm:DELETER"}

    # After the grace period the rejected objects are purged, everything else stays.
    assert await eventually(lambda: archived(platform, study) == remaining, 120)
    for ds in (first[1], second[0]):
        wado = f"/dicom-web/studies/{study}/series/{ds.SeriesInstanceUID}/instances/"
        raw = platform.get(wado + str(ds.SOPInstanceUID), headers={"Accept": "application/dicom"})
        assert raw.status_code == 200
        assert dataset_digest(raw.content) == dataset_digest(part10_bytes(ds))
