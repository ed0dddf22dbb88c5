"""WADO-RS pixels against the real platform: stored by DCMTK storescu and by STOW-RS,
retrieved with dicomweb-client (independent) and plain HTTP the way OHIF asks.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import JPEGLSLossless, generate_uid

from infra.multipart import parse_content_type, split_multipart
from tests.dicom_factory import ct_dataset, write_series
from tests.integration.conftest import Platform, eventually, run

pytestmark = pytest.mark.integration

OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"


@dataclass
class PixelStudy:
    study: str
    native: list[Dataset]  # CT, Explicit VR LE, sent by DCMTK storescu
    jpeg_ls: list[Dataset]  # CT, JPEG-LS lossless, sent by STOW-RS
    rle_multiframe: Dataset  # RGB, RLE, 2 frames, sent by STOW-RS
    native_pixels: dict[str, np.ndarray]  # SOP Instance UID -> pixels before compression

    def url(self, ds: Dataset) -> str:
        return (
            f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}"
        )


def _build(tmp: Path) -> tuple[PixelStudy, list[Path]]:
    study = generate_uid()
    native_series, jls_series = generate_uid(), generate_uid()
    native = [ct_dataset(study, native_series, n, size=64) for n in (1, 2, 3)]
    for ds in native:
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
    jpeg_ls = [ct_dataset(study, jls_series, n, size=64, seed=7) for n in (1, 2)]
    pixels = {ds.SOPInstanceUID: ds.pixel_array.copy() for ds in native + jpeg_ls}
    for ds in jpeg_ls:
        ds.compress(JPEGLSLossless, generate_instance_uid=False)
    rle = pydicom.dcmread(str(get_testdata_file("SC_rgb_rle_2frame.dcm")))
    pixels["rle"] = rle.pixel_array.copy()
    rle.StudyInstanceUID, rle.SeriesInstanceUID = study, generate_uid()
    rle.SOPInstanceUID = rle.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    rle.PatientID = "PIXELS-1"
    files = write_series(tmp, iter(native))
    return PixelStudy(study, native, jpeg_ls, rle, pixels), files


@pytest.fixture(scope="module")
async def stored(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory, dcmtk: None
) -> AsyncIterator[PixelStudy]:
    data, files = _build(tmp_path_factory.mktemp("pixels"))
    host, port = platform.dicom
    result = run(
        ["storescu", "-aec", platform.settings.dicom.ae_title, host, str(port), *map(str, files)]
    )
    assert result.returncode == 0, result.stderr
    client = DICOMwebClient(url=f"{platform.http}/dicom-web", headers=platform.auth)
    client.store_instances([*data.jpeg_ls, data.rle_multiframe])

    def all_listed() -> bool:
        response = platform.get(f"/dicom-web/studies/{data.study}/instances", timeout=30)
        return response.status_code == 200 and len(response.json()) == 6

    await eventually(all_listed, timeout=30, interval=0.2)
    yield data


def _parts(response: httpx.Response) -> list[tuple[str, bytes]]:
    assert response.status_code == 200, response.text
    media_type, params = parse_content_type(response.headers["content-type"])
    assert media_type == "multipart/related"
    return [(p.content_type, p.body) for p in split_multipart(response.content, params["boundary"])]


def test_dicomweb_client_retrieves_a_series_as_stored(
    platform: Platform, stored: PixelStudy
) -> None:
    client = DICOMwebClient(url=f"{platform.http}/dicom-web", headers=platform.auth)
    first = stored.native[0]
    got = client.retrieve_series(first.StudyInstanceUID, first.SeriesInstanceUID)
    assert sorted(ds.InstanceNumber for ds in got) == [1, 2, 3]
    for ds in got:
        np.testing.assert_array_equal(ds.pixel_array, stored.native_pixels[ds.SOPInstanceUID])


def test_series_transcoded_to_explicit_le_on_request(
    platform: Platform, stored: PixelStudy
) -> None:
    first = stored.jpeg_ls[0]
    response = platform.get(
        f"/dicom-web/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}",
        headers={
            "Accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.1"
        },
        timeout=60,
    )
    parts = _parts(response)
    assert len(parts) == 2
    for content_type, body in parts:
        assert "transfer-syntax=1.2.840.10008.1.2.1" in content_type
        ds = pydicom.dcmread(io.BytesIO(body))
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        np.testing.assert_array_equal(ds.pixel_array, stored.native_pixels[ds.SOPInstanceUID])


def test_study_retrieve_and_unknown_study(platform: Platform, stored: PixelStudy) -> None:
    response = platform.get(f"/dicom-web/studies/{stored.study}", timeout=60)
    assert len(_parts(response)) == 6
    missing = platform.get("/dicom-web/studies/1.2.3.999999", timeout=30)
    assert missing.status_code == 404


def test_dicomweb_client_frames_decompressed(platform: Platform, stored: PixelStudy) -> None:
    client = DICOMwebClient(url=f"{platform.http}/dicom-web", headers=platform.auth)
    ds = stored.jpeg_ls[1]
    (frame,) = client.retrieve_instance_frames(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        frame_numbers=[1],
        media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
    )
    assert frame == stored.native_pixels[ds.SOPInstanceUID].astype("<u2").tobytes()


def test_ohif_frames_request_gets_stored_encodings(platform: Platform, stored: PixelStudy) -> None:
    jls = stored.jpeg_ls[0]
    (part,) = _parts(
        platform.get(
            f"{stored.url(jls)}/frames/1",
            headers={"Accept": OHIF_FRAMES},
            timeout=30,
        )
    )
    assert part[0] == "image/jls; transfer-syntax=1.2.840.10008.1.2.4.80"
    native = stored.native[0]
    (part,) = _parts(
        platform.get(
            f"{stored.url(native)}/frames/1",
            headers={"Accept": OHIF_FRAMES},
            timeout=30,
        )
    )
    assert part[0] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    assert part[1] == native.PixelData
    rle = stored.rle_multiframe
    parts = _parts(
        platform.get(
            f"{stored.url(rle)}/frames/1,2",
            headers={"Accept": OHIF_FRAMES},
            timeout=30,
        )
    )
    assert [p[0] for p in parts] == ["image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5"] * 2
    bad = platform.get(f"{stored.url(rle)}/frames/3", timeout=30)
    assert bad.status_code == 404 and "2 frame" in bad.json()["detail"]


def test_pixel_bulkdata_uri_from_the_metadata_serves_the_frames(
    platform: Platform, stored: PixelStudy
) -> None:
    ds = stored.native[1]
    response = platform.get(f"{stored.url(ds)}/metadata", timeout=30)
    uri = response.json()[0]["7FE00010"]["BulkDataURI"]
    assert uri == f"{platform.http}{stored.url(ds)}/bulkdata/7FE00010"
    (part,) = _parts(httpx.get(uri, headers=platform.auth, timeout=30))
    assert part[1] == ds.PixelData


def test_dicomweb_client_rendered_and_thumbnails(platform: Platform, stored: PixelStudy) -> None:
    client = DICOMwebClient(url=f"{platform.http}/dicom-web", headers=platform.auth)
    ds = stored.jpeg_ls[0]
    jpeg = client.retrieve_instance_rendered(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        media_types=("image/jpeg",),
        params={"window": "2048,4096", "viewport": "32,32"},
    )
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (32, 32)
    assert np.asarray(image).std() > 20  # noise, not a blank frame
    rle = stored.rle_multiframe
    for path in (
        f"/dicom-web/studies/{stored.study}/thumbnail",
        f"/dicom-web/studies/{stored.study}/series/{rle.SeriesInstanceUID}/thumbnail",
        f"{stored.url(rle)}/frames/2/rendered",
    ):
        response = platform.get(path, timeout=30)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(response.content)).size[0] <= 128 or "rendered" in path


def test_wado_uri_and_cors(platform: Platform, stored: PixelStudy) -> None:
    ds = stored.native[2]
    params = {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
    }
    response = platform.get(
        "/wado",
        params={**params, "contentType": "image/png", "rows": "32"},
        headers={"Origin": "http://localhost:3000"},
        timeout=30,
    )
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (32, 32)
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    dicom = platform.get("/wado", params={**params, "contentType": "application/dicom"}, timeout=30)
    assert pydicom.dcmread(io.BytesIO(dicom.content)).SOPInstanceUID == ds.SOPInstanceUID
    bad = platform.get("/wado", params={**params, "requestType": "X"}, timeout=30)
    assert bad.status_code == 400 and "requestType" in bad.json()["detail"]
