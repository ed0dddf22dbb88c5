"""The archive copy is verified by content whatever the object's size, and so is a retry.

Runs the real archive activity against a real SeaweedFS (started alone: nothing else is
needed), with each landing mode, and a stand-in for the broker.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from pydicom.uid import ExplicitVRLittleEndian, XRayAngiographicImageStorage, generate_uid
from temporalio.testing import ActivityEnvironment

from activities.storage import StorageActivities
from infra.settings import Settings
from infra.stack import LocalStack
from infra.storage.archive import (
    ARCHIVE_PART_SIZE,
    ArchiveStore,
    archive_key,
    content_digest,
    make_minio,
)
from infra.storage.landing import Landing, S3Landing, SpoolLanding, landing_key
from infra.storage.tiers import Tiers
from schemas.events import InstanceRef
from schemas.workflows import ArchiveBatch, ArchiveResult, LandedInstance
from tests.integration.conftest import platform_settings

pytestmark = pytest.mark.integration

MB = 1_000_000
LARGE = 25 * MB + 7  # over 5 MiB: the MinIO SDK's default upload is multipart
SMALL = 300_000


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def publish_many(self, events: Iterable[Any]) -> None:
        self.events.extend(events)

    async def publish(self, event: Any) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
async def object_store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    stack = LocalStack(platform_settings(tmp_path_factory.mktemp("objectstore"), base=14000))
    try:
        await stack.start_object_store()
        yield stack.settings
    finally:
        stack.stop_all()


@pytest.fixture
def s3(object_store: Settings) -> Minio:
    return make_minio(object_store.s3)


@pytest.fixture(params=["spool", "s3"])
def landing(request: pytest.FixtureRequest, tmp_path: Path, s3: Minio) -> Landing:
    settings: Settings = request.getfixturevalue("object_store")
    if request.param == "spool":
        return SpoolLanding(tmp_path / "spool")
    return S3Landing(s3, settings.s3.landing_bucket)


@pytest.fixture
def archive(object_store: Settings, s3: Minio) -> ArchiveStore:
    return ArchiveStore(s3, object_store.s3.archive_bucket)


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def land(landing: Landing, data: bytes) -> LandedInstance:
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    sha256 = hashlib.sha256(data).hexdigest()
    ref = InstanceRef(
        study_instance_uid=study,
        series_instance_uid=series,
        sop_instance_uid=sop,
        sop_class_uid=XRayAngiographicImageStorage,
        sha256=sha256,
        size=len(data),
    )
    key = landing_key(study, series, sop, sha256)
    landing.put(key, data)
    return LandedInstance(
        instance=ref,
        landing_mode=landing.mode,
        landing_key=key,
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )


def key_of(landed: LandedInstance) -> str:
    ref = landed.instance
    return archive_key(ref.study_instance_uid, ref.series_instance_uid, ref.sop_instance_uid)


def plant(archive: ArchiveStore, landed: LandedInstance, data: bytes) -> str:
    """What an earlier attempt may have left: `data` under the key, labelled with the landed
    copy's SHA-256, written by the SDK's default upload (5 MiB parts). Returns its ETag."""
    result = archive.client.put_object(
        archive.bucket,
        key_of(landed),
        io.BytesIO(data),
        len(data),
        content_type="application/dicom",
        metadata={"sha256": landed.instance.sha256},
    )
    return str(result.etag)


def corrupted(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


async def archive_batch(
    archive: ArchiveStore, landing: Landing, *landed: LandedInstance
) -> tuple[ArchiveResult, RecordingPublisher]:
    publisher = RecordingPublisher()
    tiers = Tiers(archive)  # hot only
    activities = StorageActivities({landing.mode: landing}, tiers, publisher)  # type: ignore[arg-type]
    result = await ActivityEnvironment().run(
        activities.archive_instances, ArchiveBatch(instances=list(landed))
    )
    return result, publisher


def stored_bytes(archive: ArchiveStore, landed: LandedInstance) -> bytes | None:
    return archive.get(key_of(landed))


@pytest.mark.parametrize(
    "size", [0, 1, ARCHIVE_PART_SIZE, ARCHIVE_PART_SIZE + 1, 3 * ARCHIVE_PART_SIZE, LARGE], ids=str
)
def test_the_store_answers_the_etag_predicted_from_the_bytes(
    archive: ArchiveStore, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One part or many, SeaweedFS's ETag is the S3 one for our part size: no read-back."""
    monkeypatch.setattr(ArchiveStore, "read_back_sha256", lambda _self, key: pytest.fail(key))
    data = payload(size)
    digest = content_digest(io.BytesIO(data))
    key = f"etag-test/{generate_uid()}.dcm"
    archive.put_verified(key, io.BytesIO(data), digest)
    stored = archive.head(key)
    assert stored is not None and stored.etag == digest.etag and stored.size == size
    assert archive.verify(stored, digest)
    assert archive.get(key) == data


async def test_large_object_is_archived_and_verified_at_the_first_attempt(
    archive: ArchiveStore, landing: Landing
) -> None:
    data = payload(LARGE)
    landed = land(landing, data)
    result, publisher = await archive_batch(archive, landing, landed)
    assert [a.sop_instance_uid for a in result.archived] == [landed.instance.sop_instance_uid]
    assert stored_bytes(archive, landed) == data
    assert len(publisher.events) == 1
    assert landing.get(landed.landing_key) is None, "landed copy dropped once archived"


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["small", "large"])
async def test_retry_rewrites_an_archived_object_that_does_not_hold_the_landed_bytes(
    archive: ArchiveStore, landing: Landing, size: int
) -> None:
    data = payload(size, seed=1)
    landed = land(landing, data)
    plant(archive, landed, corrupted(data))  # right sha256 metadata, wrong bytes
    result, publisher = await archive_batch(archive, landing, landed)
    assert stored_bytes(archive, landed) == data, "a retry trusted the metadata alone"
    assert [a.sop_instance_uid for a in result.archived] == [landed.instance.sop_instance_uid]
    assert len(publisher.events) == 1
    assert publisher.events[0].previous_version_key is None, "a broken copy is no version"


async def test_retry_keeps_an_intact_archived_object_written_with_other_part_sizes(
    archive: ArchiveStore, landing: Landing
) -> None:
    """An ETag that cannot be compared (other part size) is settled by reading the object."""
    data = payload(LARGE, seed=2)
    landed = land(landing, data)
    etag = plant(archive, landed, data)
    result, _ = await archive_batch(archive, landing, landed)
    assert [a.sop_instance_uid for a in result.archived] == [landed.instance.sop_instance_uid]
    stat = archive.client.stat_object(archive.bucket, key_of(landed))
    assert str(stat.etag).strip('"') == etag, "an intact object was written again"


async def test_retry_verifies_without_reading_back_what_this_code_wrote(
    archive: ArchiveStore, landing: Landing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second attempt after a write that succeeded (e.g. the announcement failed): the stored
    ETag proves the content, so nothing is read back or written again."""
    data = payload(LARGE, seed=3)
    landed = land(landing, data)
    await archive_batch(archive, landing, landed)
    landing.put(landed.landing_key, data)  # as if the first attempt stopped before deleting
    etag = archive.client.stat_object(archive.bucket, key_of(landed)).etag
    read_backs: list[str] = []
    monkeypatch.setattr(
        ArchiveStore, "read_back_sha256", lambda _self, key: read_backs.append(key), raising=False
    )
    result, _ = await archive_batch(archive, landing, landed)
    assert [a.sop_instance_uid for a in result.archived] == [landed.instance.sop_instance_uid]
    assert read_backs == []
    assert archive.client.stat_object(archive.bucket, key_of(landed)).etag == etag


async def test_retry_with_the_landed_copy_gone_reads_the_archived_object_back(
    archive: ArchiveStore, landing: Landing
) -> None:
    """Landed copies are dropped only after announcing, so an attempt can die between two
    drops; the next one cannot compare against landing and must hash what is archived."""
    intact, damaged = payload(SMALL, seed=4), payload(SMALL, seed=5)
    landed_intact, landed_damaged = land(landing, intact), land(landing, damaged)
    plant(archive, landed_intact, intact)
    plant(archive, landed_damaged, corrupted(damaged))
    landing.delete(landed_intact.landing_key)
    landing.delete(landed_damaged.landing_key)
    result, publisher = await archive_batch(archive, landing, landed_intact, landed_damaged)
    assert [a.sop_instance_uid for a in result.archived] == [
        landed_intact.instance.sop_instance_uid
    ]
    assert [e.instance.sop_instance_uid for e in publisher.events] == [
        landed_intact.instance.sop_instance_uid
    ]
