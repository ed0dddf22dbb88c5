"""STOW-RS and WADO-RS with an independent client (dicomweb-client) and raw HTTP."""

from __future__ import annotations

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from infra.multipart import build_multipart
from tests.dicom_factory import ct_series, part10_bytes
from tests.integration.conftest import Platform

pytestmark = pytest.mark.integration

REFERENCED = "00081199"
FAILED = "00081198"


def stow(platform: Platform, bodies: list[bytes], study: str | None = None) -> httpx.Response:
    body, boundary = build_multipart(("application/dicom", b) for b in bodies)
    path = "/dicom-web/studies" + (f"/{study}" if study else "")
    return platform.post(
        path,
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
        timeout=120,
    )


def test_fifty_instances_in_one_request(platform: Platform) -> None:
    datasets = list(ct_series(50, size=128))
    response = stow(platform, [part10_bytes(ds) for ds in datasets])
    assert response.status_code == 200, response.text
    referenced = response.json()[REFERENCED]["Value"]
    assert {item["00081155"]["Value"][0] for item in referenced} == {
        ds.SOPInstanceUID for ds in datasets
    }
    assert FAILED not in response.json()


def test_one_corrupt_part_fails_alone(platform: Platform) -> None:
    datasets = list(ct_series(5, size=64))
    bodies = [part10_bytes(ds) for ds in datasets]
    bodies.insert(2, b"\x00" * 128 + b"DICM" + b"garbage that is not a dataset")
    response = stow(platform, bodies)
    assert response.status_code == 202, response.text
    body = response.json()
    assert len(body[REFERENCED]["Value"]) == 5
    (failure,) = body[FAILED]["Value"]
    # 0xC2xx: "cannot understand" (the garbage parses to a dataset without identifiers)
    assert failure["00081197"]["Value"][0] >> 8 == 0xC2
    assert failure["00000902"]["Value"][0]  # a human-readable reason


def test_study_mismatch_is_refused_with_409(platform: Platform) -> None:
    (ds,) = ct_series(1, size=32)
    response = stow(platform, [part10_bytes(ds)], study=generate_uid())
    assert response.status_code == 409
    assert response.json()[FAILED]["Value"][0]["00081197"]["Value"] == [0xA900]


def test_wrong_media_type_is_415(platform: Platform) -> None:
    response = platform.post(
        "/dicom-web/studies",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 415
    assert "multipart/related" in response.json()["detail"]


def test_dicomweb_client_stores_and_retrieves(platform: Platform) -> None:
    client = DICOMwebClient(url=f"{platform.http}/dicom-web", headers=platform.auth)
    datasets = list(ct_series(3, size=64))
    client.store_instances(datasets)
    for ds in datasets:
        got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert got.SOPInstanceUID == ds.SOPInstanceUID
        assert got.PixelData == ds.PixelData


def test_unknown_instance_is_404(platform: Platform) -> None:
    uid = generate_uid()
    response = platform.get(f"/dicom-web/studies/{uid}/series/{uid}/instances/{uid}")
    assert response.status_code == 404
