"""Large multi-frame objects (25 MB, 300 MB) through C-STORE and STOW-RS: archived, verified
at the first attempt of every activity, and retrieved byte for byte.

Objects over 5 MiB go to the archive in parts; this is where their verification once failed
every first attempt and a retry then trusted the object's metadata.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from infra.storage.archive import archive_key, make_minio
from tests.dicom_factory import multiframe_dataset
from tests.integration.conftest import Platform, eventually, run

pytestmark = pytest.mark.integration

FRAME_BYTES = 512 * 512 * 2
SIZES = {"25MB": 25_000_000, "300MB": 300_000_000}
FAILED_ATTEMPT = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
}
REFERENCED = "00081199"


def write_multiframe(folder: Path, size: int) -> Path:
    ds = multiframe_dataset(-(-size // FRAME_BYTES), seed=size)
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def dataset_offset(part10: Path | bytes) -> int:
    """Where the dataset starts after the File Meta group (a sender's bytes, kept as sent)."""
    source = io.BytesIO(part10) if isinstance(part10, bytes) else part10
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    return 132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength)


def sha256_from(path: Path, offset: int) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def send_cstore(platform: Platform, path: Path) -> None:
    host, port = platform.dicom
    result = run(["storescu", "-aec", "PACS", "-aet", "BIGSCU", host, str(port), str(path)])
    assert result.returncode == 0, result.stderr[-2000:]


def send_stow(platform: Platform, path: Path) -> None:
    boundary = "large-object-boundary"
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk
        yield tail

    response = platform.post(
        "/dicom-web/studies",
        content=body(),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
            "Content-Length": str(len(head) + size + len(tail)),
        },
        timeout=300,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()[REFERENCED]["Value"]) == 1


async def workflow_completed(client: Client, study: str) -> bool:
    try:
        description = await client.get_workflow_handle(f"study-ingest:{study}").describe()
    except RPCError:
        return False  # not started yet
    return bool(description.status == WorkflowExecutionStatus.COMPLETED)


async def activity_record(client: Client, study: str) -> dict[str, Any]:
    """Over every run of the study's workflow: failed attempts, started attempt numbers and
    how long each archive activity took from scheduled to completed."""
    failed, attempts, archive_seconds = [], [], []
    scheduled: dict[int, tuple[str, float]] = {}
    async for execution in client.list_workflows(f'WorkflowId = "study-ingest:{study}"'):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        for event in (await handle.fetch_history()).events:
            kind = event.event_type
            at = event.event_time.ToDatetime().timestamp()
            if kind in FAILED_ATTEMPT:
                failed.append(EventType.Name(kind))
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[event.event_id] = (name, at)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attempts.append(event.activity_task_started_event_attributes.attempt)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                attrs = event.activity_task_completed_event_attributes
                name, since = scheduled[attrs.scheduled_event_id]
                if name == "archive_instances":
                    archive_seconds.append(at - since)
    return {"failed": failed, "attempts": attempts, "archive_seconds": archive_seconds}


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("via", ["c-store", "stow-rs"])
async def test_large_multiframe_is_archived_verified_first_time_and_retrieved_unchanged(
    platform: Platform,
    temporal_client: Client,
    dcmtk: None,
    tmp_path: Path,
    via: str,
    size: int,
) -> None:
    path = write_multiframe(tmp_path, size)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    study = header.StudyInstanceUID
    sent_offset = dataset_offset(path)
    sent_dataset_sha = sha256_from(path, sent_offset)

    started = time.monotonic()
    (send_cstore if via == "c-store" else send_stow)(platform, path)
    acked = time.monotonic()
    await eventually(lambda: workflow_completed(temporal_client, study), timeout=300)
    done = time.monotonic()

    record = await activity_record(temporal_client, study)
    assert record["failed"] == [], "an activity attempt failed"
    assert record["attempts"] and set(record["attempts"]) == {1}, record
    assert len(record["archive_seconds"]) == 1

    # Archived under its key in parts (the path that was never verified), labelled with the
    # SHA-256 of what it holds.
    s3 = make_minio(platform.settings.s3)
    bucket = platform.settings.s3.archive_bucket
    key = archive_key(study, header.SeriesInstanceUID, header.SOPInstanceUID)
    archived = tmp_path / "archived.dcm"
    s3.fget_object(bucket, key, str(archived))
    archived_sha = sha256_from(archived, 0)
    stat = s3.stat_object(bucket, key)
    assert "-" in str(stat.etag), f"not a multipart write: etag {stat.etag}"
    assert stat.metadata["x-amz-meta-sha256"] == archived_sha
    assert sha256_from(archived, dataset_offset(archived)) == sent_dataset_sha
    if via == "stow-rs":
        assert archived_sha == sha256_from(path, 0), "STOW-RS keeps the file as sent"
    assert not (platform.settings.spool_dir / "landing" / study).exists(), "landing not drained"

    # WADO-RS answers the archived bytes, byte for byte.
    instance = (
        f"/dicom-web/studies/{study}/series/{header.SeriesInstanceUID}"
        f"/instances/{header.SOPInstanceUID}"
    )
    retrieved = hashlib.sha256()
    accept = {"Accept": "application/dicom; transfer-syntax=*"}
    with (
        platform.client(timeout=300) as api,
        api.stream("GET", instance, headers=accept) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes(1 << 20):
            retrieved.update(chunk)
    assert retrieved.hexdigest() == archived_sha

    print(
        f"\n{via} {size / 1e6:.0f} MB: acked after {acked - started:.1f}s, workflow done "
        f"{done - acked:.1f}s later, archive activity {record['archive_seconds'][0]:.2f}s, "
        f"failed attempts {len(record['failed'])}"
    )
