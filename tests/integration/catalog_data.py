"""Two small studies with distinct, searchable attributes, unique to each test run."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.dicom_factory import ct_dataset
from tests.integration.conftest import Platform, eventually
from tests.integration.dimse_client import send_all


@dataclass
class CatalogFixture:
    token: str  # unique per run: every PatientID/name below contains it
    alice: list[Dataset]  # study A: CT series (3) + MR series (2), 2025-01-02
    bob: list[Dataset]  # study B: CT series (2), 2025-03-10

    @property
    def all(self) -> list[Dataset]:
        return self.alice + self.bob


def _study(token: str, who: str, date: str, series: list[tuple[str, int]]) -> list[Dataset]:
    study = generate_uid()
    datasets = []
    for number, (modality, count) in enumerate(series, start=1):
        series_uid = generate_uid()
        for index in range(1, count + 1):
            ds = ct_dataset(study, series_uid, index, size=32, patient_id=f"{who}-{token}")
            ds.PatientName = f"{who}^{token}"
            ds.StudyDate = date
            ds.StudyTime = "101500"
            ds.AccessionNumber = f"A{token[:6]}{who[:2]}"
            ds.StudyDescription = f"{who} study"
            ds.Modality = modality
            ds.SeriesNumber = number
            ds.SeriesDescription = f"{modality} series {number}"
            datasets.append(ds)
    return datasets


def catalog_fixture() -> CatalogFixture:
    token = uuid.uuid4().hex[:10].upper()
    return CatalogFixture(
        token=token,
        alice=_study(token, "ALICE", "20250102", [("CT", 3), ("MR", 2)]),
        bob=_study(token, "BOB", "20250310", [("CT", 2)]),
    )


@pytest.fixture(scope="module")
async def stored(platform: Platform) -> AsyncIterator[CatalogFixture]:
    """The two studies sent over DIMSE, and visible in the catalog."""
    data = catalog_fixture()
    assert send_all(platform.dicom, data.all, [], threading.Lock()) == []

    def visible() -> bool:
        # The documented wait: a change listed in /api/changes is queryable at every level
        # (the instance table alone is written before the series and study rows).
        for study in {ds.StudyInstanceUID for ds in data.all}:
            params: dict[str, Any] = {"StudyInstanceUID": study, "limit": 1000}
            response = platform.get("/api/changes", params=params, timeout=30)
            if response.status_code != 200:
                return False
            received = {
                change["sop_instance_uid"]
                for change in response.json()["changes"]
                if change["type"] == "pacs.instance.received"
            }
            if received != {ds.SOPInstanceUID for ds in data.all if ds.StudyInstanceUID == study}:
                return False
        return True

    await eventually(visible, timeout=30, interval=0.2)
    yield data
