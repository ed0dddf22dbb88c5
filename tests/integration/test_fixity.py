"""Fixity on the real platform: a scrub of a study re-reads each archived object from
SeaweedFS; a clean study passes, and an object corrupted behind the platform's back (its
bytes changed, its recorded SHA-256 kept) is reported by key, in the job's result and as a
`pacs.instance.damaged` event in the audit trail."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from infra.storage.archive import SHA256_META, archive_key, make_minio
from tests.dicom_factory import ct_series
from tests.integration.conftest import Platform, eventually
from tests.integration.test_deletion import send

pytestmark = pytest.mark.integration


async def scrub(platform: Platform, study: str, page_size: int = 200) -> dict[str, Any]:
    body = {"study_instance_uid": study, "page_size": page_size}
    answer = platform.client().post("/api/storage/fixity", json=body)
    assert answer.status_code == 202, answer.text
    url = answer.json()["status_url"]
    job: dict[str, Any] = await eventually(
        lambda: (j := platform.get(url).json())["status"] == "Completed" and j, 60
    )
    assert job["type"] == "FixityWorkflow" and job["keys"]["StudyInstanceUID"] == study
    result: dict[str, Any] = job["result"]
    return result


async def test_a_corrupted_archived_object_is_reported(
    platform: Platform, tmp_path: Path, dcmtk: None
) -> None:
    images = list(ct_series(3, size=32, patient_id="FIXITY-1"))
    study = str(images[0].StudyInstanceUID)
    send(platform, tmp_path / "in", images)
    s3 = platform.settings.s3
    client = make_minio(s3)

    def archived() -> list[str]:
        found = client.list_objects(s3.archive_bucket, f"{study}/", recursive=True)
        return [str(o.object_name) for o in found]

    await eventually(lambda: len(archived()) == 3, 60)
    clean = await scrub(platform, study)
    assert (clean["checked"], clean["damaged"], clean["problems"]) == (3, 0, [])
    assert clean["bytes_read"] == sum(
        o.size or 0 for o in client.list_objects(s3.archive_bucket, f"{study}/", recursive=True)
    )

    # Bit rot: one byte of the pixel data flipped, the object's recorded SHA-256 kept.
    victim = images[1]
    key = archive_key(study, str(victim.SeriesInstanceUID), str(victim.SOPInstanceUID))
    response = client.get_object(s3.archive_bucket, key)
    data = bytearray(response.read())
    response.close()
    recorded = client.stat_object(s3.archive_bucket, key).metadata[f"x-amz-meta-{SHA256_META}"]
    assert recorded == hashlib.sha256(data).hexdigest()
    data[-10] ^= 0xFF
    client.put_object(
        s3.archive_bucket, key, io.BytesIO(bytes(data)), len(data),
        metadata={SHA256_META: recorded},
    )  # fmt: skip

    found = await scrub(platform, study, page_size=1)  # one object per page: resumes by key
    assert (found["checked"], found["damaged"]) == (3, 1)
    [problem] = found["problems"]
    assert problem["key"] == key and problem["reason"] == "content differs"
    assert problem["sop_instance_uid"] == victim.SOPInstanceUID
    assert problem["expected_sha256"] == recorded
    assert problem["found_sha256"] == hashlib.sha256(data).hexdigest()

    params = {"type": "pacs.instance.damaged", "StudyInstanceUID": study, "limit": 10}
    events = await eventually(
        lambda: platform.get("/api/audit/events", params=params).json() or None, 30
    )
    assert [e["sop_instance_uid"] for e in events] == [victim.SOPInstanceUID]
