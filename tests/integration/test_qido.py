"""QIDO-RS and WADO-RS metadata answer from the catalog, right after a DIMSE store."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from dicomweb_client.api import DICOMwebClient

from tests.dicom_factory import ct_series
from tests.integration.catalog_data import CatalogFixture, stored
from tests.integration.conftest import Platform, eventually
from tests.integration.dimse_client import send_all

pytestmark = pytest.mark.integration
__all__ = ["stored"]  # the module-scoped fixture


def _get(platform: Platform, path: str, **params: Any) -> list[dict[str, Any]]:
    response = platform.get(path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    rows: list[dict[str, Any]] = response.json()
    return rows


def _values(rows: list[dict[str, Any]], tag: str) -> list[Any]:
    return [row.get(tag, {}).get("Value", [None])[0] for row in rows]


def test_study_search_returns_one_row_per_study_with_counts(
    platform: Platform, stored: CatalogFixture
) -> None:
    alice = stored.alice[0]
    (study,) = _get(platform, "/dicom-web/studies", PatientID=alice.PatientID)
    assert study["0020000D"]["Value"] == [alice.StudyInstanceUID]
    assert study["00080061"]["Value"] == ["CT", "MR"]  # ModalitiesInStudy
    assert study["00201206"]["Value"] == [2]  # NumberOfStudyRelatedSeries
    assert study["00201208"]["Value"] == [5]  # NumberOfStudyRelatedInstances
    assert study["00100010"]["Value"] == [{"Alphabetic": f"ALICE^{stored.token}"}]
    assert study["00081190"]["Value"][0].endswith(f"/dicom-web/studies/{alice.StudyInstanceUID}")


def test_matching_rules(platform: Platform, stored: CatalogFixture) -> None:
    token = stored.token
    a, b = stored.alice[0].StudyInstanceUID, stored.bob[0].StudyInstanceUID

    def studies(**params: Any) -> set[str]:
        return set(_values(_get(platform, "/dicom-web/studies", **params), "0020000D"))

    # Wildcards, and person names match case-insensitively.
    assert studies(PatientName=f"*^{token.lower()}") == {a, b}
    assert studies(PatientName=f"al?ce^{token}") == {a}
    # Date ranges, open and closed.
    assert studies(PatientID=f"*{token}", StudyDate="20250101-20250201") == {a}
    assert studies(PatientID=f"*{token}", StudyDate="20250201-") == {b}
    assert studies(PatientID=f"*{token}", StudyDate="-20250102") == {a}
    # A list of UIDs.
    assert studies(StudyInstanceUID=f"{a}\\{b}") == {a, b}
    # Attributes computed per study.
    assert studies(PatientID=f"*{token}", ModalitiesInStudy="MR") == {a}
    # fuzzymatching: any name component starting with the value.
    assert studies(PatientName=token[:5], fuzzymatching="true") == {a, b}
    assert studies(PatientName=token[:5]) == set()


def test_series_and_instances(platform: Platform, stored: CatalogFixture) -> None:
    study = stored.alice[0].StudyInstanceUID
    series = _get(platform, f"/dicom-web/studies/{study}/series")
    assert sorted(_values(series, "00080060")) == ["CT", "MR"]
    counts = dict(zip(_values(series, "00080060"), _values(series, "00201209"), strict=True))
    assert counts == {"CT": 3, "MR": 2}
    ct = stored.alice[0].SeriesInstanceUID
    instances = _get(platform, f"/dicom-web/studies/{study}/series/{ct}/instances")
    assert _values(instances, "00200013") == [1, 2, 3]
    assert set(_values(instances, "00080018")) == {ds.SOPInstanceUID for ds in stored.alice[:3]}
    everywhere = _get(platform, "/dicom-web/series", PatientID=stored.bob[0].PatientID)
    assert _values(everywhere, "0020000E") == [stored.bob[0].SeriesInstanceUID]
    paged = _get(platform, "/dicom-web/instances", PatientID=f"*{stored.token}", limit=2, offset=5)
    assert len(paged) == 2


@pytest.mark.parametrize("path", ["/dicom-web/instances", "/dicom-web/studies"])
def test_limit_and_offset_page_through_every_match(
    platform: Platform, stored: CatalogFixture, path: str
) -> None:
    """Instances come from ClickHouse, studies from the resident rows: both page the same.
    Every page but the last says there is more (PS3.18 8.3.4.4), and with which offset."""
    key = "00080018" if path.endswith("instances") else "0020000D"
    expected = {
        ds.SOPInstanceUID if key == "00080018" else ds.StudyInstanceUID for ds in stored.all
    }
    size = 3 if key == "00080018" else 1
    seen: list[str] = []
    offset = 0
    while True:
        response = platform.get(
            path,
            params={"PatientID": f"*{stored.token}", "limit": size, "offset": offset},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        page = _values(response.json(), key)
        seen += page
        offset += size
        if len(seen) < len(expected):
            assert len(page) == size
            assert f"offset={offset}" in response.headers["Warning"]
        else:
            assert "Warning" not in response.headers
            break
    assert sorted(seen) == sorted(expected)


def test_bad_queries_get_400_with_a_reason(platform: Platform, stored: CatalogFixture) -> None:
    for params in ({"StudyDate": "2025"}, {"limit": "ten"}, {"NoSuchKey": "1"}):
        response = platform.get("/dicom-web/studies", params=params)
        assert response.status_code == 400, params
        assert response.json()["detail"]
    response = platform.get("/dicom-web/studies/not-a-uid/series")
    assert response.status_code == 400


def test_series_metadata_is_the_stored_header(platform: Platform, stored: CatalogFixture) -> None:
    first = stored.alice[0]
    metadata = (
        f"/dicom-web/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}/metadata"
    )
    response = platform.get(metadata)
    assert response.status_code == 200
    items = response.json()
    assert [item["00200013"]["Value"][0] for item in items] == [1, 2, 3]
    assert items[0]["00080018"]["Value"] == [first.SOPInstanceUID]
    assert items[0]["00280010"]["Value"] == [32]  # Rows
    assert items[0]["00083002"]["Value"] == ["1.2.840.10008.1.2.1"]
    pixel = items[0]["7FE00010"]
    assert pixel["vr"] == "OW"
    assert pixel["BulkDataURI"] == (
        f"{platform.http}/dicom-web/studies/{first.StudyInstanceUID}/series/"
        f"{first.SeriesInstanceUID}/instances/{first.SOPInstanceUID}/bulkdata/7FE00010"
    )
    missing = platform.get(metadata.replace(first.SeriesInstanceUID, "1.2.3.4"))
    assert missing.status_code == 404


def test_dicomweb_client_searches_and_reads_metadata(
    platform: Platform, stored: CatalogFixture
) -> None:
    client = DICOMwebClient(url=f"{platform.http}/dicom-web", headers=platform.auth)
    bob = stored.bob[0]
    studies = client.search_for_studies(search_filters={"PatientID": bob.PatientID})
    assert [s["0020000D"]["Value"][0] for s in studies] == [bob.StudyInstanceUID]
    series = client.search_for_series(bob.StudyInstanceUID)
    assert len(series) == 1
    metadata = client.retrieve_series_metadata(bob.StudyInstanceUID, bob.SeriesInstanceUID)
    assert {m["00080018"]["Value"][0] for m in metadata} == {ds.SOPInstanceUID for ds in stored.bob}


async def test_a_listed_change_is_already_queryable(platform: Platform) -> None:
    """The documented way to wait after a store: follow /api/changes, then query."""
    (ds,) = list(ct_series(1, size=8, patient_id="CHANGES-FEED"))
    start = platform.get("/api/changes", params={"limit": 1}).json()
    assert send_all(platform.dicom, [ds], [], threading.Lock()) == []

    def listed() -> list[dict[str, Any]]:
        page = platform.get(
            "/api/changes",
            params={"SOPInstanceUID": ds.SOPInstanceUID, "since": -1},
        ).json()
        changes: list[dict[str, Any]] = page["changes"]
        return changes

    changes = await eventually(listed, timeout=30, interval=0.05)
    assert changes[0]["type"] == "pacs.instance.received"
    assert changes[0]["seq"] > start["last"] or start["last"] == -1
    found = _get(platform, "/dicom-web/instances", SOPInstanceUID=ds.SOPInstanceUID)
    assert len(found) == 1, "a change in the feed must already be visible to QIDO"
