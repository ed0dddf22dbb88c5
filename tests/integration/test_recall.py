"""Recall on read (PACS_TIERS__RECALL_ON_READ=true): a WADO-RS read of an instance of a study
in the cold tier is served from there at once, byte for byte, and starts moving the whole
study back to hot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.dicom_factory import ct_series
from tests.integration.conftest import Platform, eventually, platform_settings, running_platform
from tests.integration.test_deletion import send
from tests.integration.test_tiers import as_stored, in_tier, job_done, wado_bytes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def recalling(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    settings = platform_settings(tmp_path_factory.mktemp("recall"), base=16000)
    settings.tiers.recall_on_read = True
    async with running_platform(settings) as node:
        yield node


async def test_a_read_from_cold_recalls_the_study_to_hot(
    recalling: Platform, tmp_path: Path, dcmtk: None
) -> None:
    images = list(ct_series(3, size=16, patient_id="RECALL-1"))
    study = str(images[0].StudyInstanceUID)
    send(recalling, tmp_path / "in", images)
    await in_tier(recalling, study, "hot", 3)
    stored = as_stored(recalling, images)  # reads from hot: no recall
    moved = recalling.client().post(f"/api/studies/{study}/migrate", json={"tier": "cold"})
    assert moved.status_code == 202, moved.text
    await job_done(recalling, moved.json()["status_url"])
    await in_tier(recalling, study, "cold", 3)

    one = images[0]
    sop = str(one.SOPInstanceUID)
    assert wado_bytes(recalling, study, str(one.SeriesInstanceUID), sop) == stored[sop]
    await in_tier(recalling, study, "hot", 3)
    job = recalling.get(f"/api/jobs/migrate:{study}").json()
    assert job["status"] == "Completed" and job["result"]["to_tier"] == "hot"
    assert job["result"]["moved"] == 3
    await eventually(lambda: len(recalling.audit(study, "pacs.instance.migrated")) == 6, 30)
