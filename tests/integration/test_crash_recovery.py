"""Nothing acknowledged is ever lost: SIGKILL every process mid-transfer, restart, check.

Runs once per landing mode, each on its own platform (own data dir and ports).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest

from infra.settings import DuplicatePolicy, LandingMode
from infra.stack import LocalStack
from infra.storage.archive import make_minio
from tests.dicom_factory import ct_series, part10_bytes
from tests.integration.conftest import (
    Platform,
    eventually,
    platform_settings,
    running_platform,
)
from tests.integration.dimse_client import send_all

pytestmark = pytest.mark.integration

ASSOCIATIONS = 4
IMAGES_PER_ASSOCIATION = 150
KILL_AFTER_ACKS = 120


@pytest.fixture(params=[LandingMode.SPOOL, LandingMode.S3], ids=["spool", "s3"])
async def crash_platform(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    settings = platform_settings(
        tmp_path / "data",
        base=12000,
        landing=request.param,
        duplicate_policy=DuplicatePolicy.OVERWRITE,
        orphan_after_seconds=5.0,
    )
    async with running_platform(settings) as node:
        yield node


def dataset_part(part10: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
    return part10[132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength) :]


async def test_sigkill_everything_mid_transfer_loses_nothing_acknowledged(
    crash_platform: Platform,
) -> None:
    platform = crash_platform
    studies = [list(ct_series(IMAGES_PER_ASSOCIATION, size=256)) for _ in range(ASSOCIATIONS)]
    sent = {ds.SOPInstanceUID: ds for study in studies for ds in study}
    acked: list[str] = []
    lock = threading.Lock()
    with ThreadPoolExecutor(ASSOCIATIONS) as pool:
        futures = [pool.submit(send_all, platform.dicom, s, acked, lock) for s in studies]
        deadline = time.monotonic() + 120
        while len(acked) < KILL_AFTER_ACKS and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        platform.stack.kill_all()
        for future in futures:
            future.result()
    acknowledged = set(acked)
    assert KILL_AFTER_ACKS <= len(acknowledged) < len(sent), "the kill must land mid-transfer"

    # Restart on the same data dir, exactly as `make up` would.
    platform.stack = LocalStack(platform.settings)
    await platform.start()

    async with platform.async_client(timeout=30) as client:
        for uid in sorted(acknowledged):
            ds = sent[uid]
            response = await client.get(
                f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{uid}",
                headers={"Accept": "application/dicom"},
            )
            assert response.status_code == 200, f"acknowledged {uid} lost: {response.text}"
            assert dataset_part(response.content) == dataset_part(part10_bytes(ds))

    s3 = make_minio(platform.settings.s3)
    bucket = platform.settings.s3.archive_bucket

    def archived_and_drained() -> bool:
        archived = {
            Path(str(o.object_name)).stem
            for o in s3.list_objects(bucket, recursive=True)
            if not str(o.object_name).startswith("versions/")
        }
        if not acknowledged <= archived:
            return False
        if platform.settings.ingest.landing is LandingMode.S3:
            landing = list(s3.list_objects(platform.settings.s3.landing_bucket, recursive=True))
        else:
            landing = list((platform.settings.spool_dir / "landing").rglob("*.dcm"))
        return not landing

    await eventually(archived_and_drained, timeout=240, interval=2)

    def one_received_event_each() -> bool:
        counts: dict[str, int] = {}
        for study in studies:
            for row in platform.audit(study[0].StudyInstanceUID, "pacs.instance.received"):
                counts[row["sop_instance_uid"]] = counts.get(row["sop_instance_uid"], 0) + 1
        return all(counts.get(uid) == 1 for uid in acknowledged) and max(counts.values()) == 1

    await eventually(one_received_event_each, timeout=60, interval=2)


async def test_overwrite_policy_keeps_the_old_version(crash_platform: Platform) -> None:
    platform = crash_platform
    (original,) = ct_series(1, size=32)
    lock, acked = threading.Lock(), []
    assert send_all(platform.dicom, [original], acked, lock) == []
    first = part10_bytes(original)
    original.PatientName = "Corrected^Name"
    assert send_all(platform.dicom, [original], acked, lock) == []
    key = f"{original.StudyInstanceUID}/{original.SeriesInstanceUID}/{original.SOPInstanceUID}"
    s3 = make_minio(platform.settings.s3)
    bucket = platform.settings.s3.archive_bucket

    def versions_kept() -> bool:
        return len(list(s3.list_objects(bucket, f"versions/{key}/", recursive=True))) == 1

    await eventually(versions_kept, timeout=60)
    (old,) = s3.list_objects(bucket, f"versions/{key}/", recursive=True)
    kept = s3.get_object(bucket, str(old.object_name)).read()
    assert dataset_part(kept) == dataset_part(first)
    current = s3.get_object(bucket, f"{key}.dcm").read()
    assert pydicom.dcmread(io.BytesIO(current)).PatientName == "Corrected^Name"
