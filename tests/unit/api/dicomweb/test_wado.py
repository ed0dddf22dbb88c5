"""WADO-RS / WADO-URI routes over an in-memory store and catalog.

The same routes run against the real platform (object store, landing, read model) in
tests/integration/test_wado_pixels.py.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

import jpeg_ls
import numpy as np
import pydicom
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from api.app import add_cors
from api.deps import Services
from api.dicomweb import frames, rendered, wado, wado_uri
from infra.dicom.header import read_header
from infra.multipart import Part, parse_content_type, split_multipart
from infra.readmodels.catalog.corrections import PatientCorrections
from infra.readmodels.catalog.deletions import PendingDeletions
from infra.settings import Settings
from infra.storage.archive import archive_key
from schemas.catalog import CatalogInstance, InstanceQuery
from schemas.lifecycle import DeletionScope
from tests.dicom_factory import ct_dataset, part10_bytes
from tests.unit.api.auth import ADMIN, authenticator

OCTET_ANY = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def bundled(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None
    return Path(str(path)).read_bytes()


class MemoryStore:
    """Stands in for the landing area (empty) and the archive bucket."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def versions(self, study: str, series: str, sop: str) -> list[str]:
        return []

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def instance(self, study: str, series: str, sop: str) -> bytes | None:
        return self.get(archive_key(study, series, sop))

    def fetch(self, key: str) -> tuple[str, bytes] | None:
        data = self.get(key)
        return None if data is None else ("hot", data)


class MemoryCatalog:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.deleted: set[str] = set()  # SOP Instance UIDs no longer listed

    def instances(self, query: InstanceQuery) -> list[CatalogInstance]:
        found = []
        for number, data in enumerate(self.store.objects.values()):
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            if query.study_instance_uids and ds.StudyInstanceUID not in query.study_instance_uids:
                continue
            if (
                query.series_instance_uids
                and ds.SeriesInstanceUID not in query.series_instance_uids
            ):
                continue
            if ds.SOPInstanceUID in self.deleted or (
                query.sop_instance_uids and ds.SOPInstanceUID not in query.sop_instance_uids
            ):
                continue
            found.append(
                CatalogInstance(
                    study_instance_uid=ds.StudyInstanceUID,
                    series_instance_uid=ds.SeriesInstanceUID,
                    sop_instance_uid=ds.SOPInstanceUID,
                    sop_class_uid=ds.SOPClassUID,
                    transfer_syntax_uid=read_header(data).transfer_syntax_uid,
                    instance_number=number,
                    rows=int(ds.get("Rows", 0)),
                )
            )
        return found


class Server:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.catalog: MemoryCatalog | None = MemoryCatalog(self.store)
        app = FastAPI()
        for module in (wado, frames, rendered, wado_uri):
            app.include_router(module.router)
        self.authenticator = authenticator()
        self.recorder = None  # no audit trail in these tests
        self.pending_deletions = PendingDeletions()
        self.corrections = PatientCorrections()
        app.state.services = cast(Services, self)
        self.client = TestClient(app, headers=ADMIN)

    @property
    def landing(self) -> MemoryStore:
        return self.store

    @property
    def tiers(self) -> MemoryStore:
        return self.store

    def add(self, data: bytes) -> str:
        """Stores the object; returns its instance URL."""
        header = read_header(data)
        key = archive_key(
            header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid
        )
        self.store.objects[key] = data
        return (
            f"/dicom-web/studies/{header.study_instance_uid}/series/"
            f"{header.series_instance_uid}/instances/{header.sop_instance_uid}"
        )


@pytest.fixture
def server() -> Server:
    return Server()


def parts_of(response: Any) -> list[Part]:
    media_type, params = parse_content_type(response.headers["content-type"])
    assert media_type == "multipart/related", response.headers["content-type"]
    return split_multipart(response.content, params["boundary"])


def read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def small_ct(**attributes: Any) -> bytes:
    ds = ct_dataset("1.2.3", "1.2.3.4", 1, size=64)
    for name, value in attributes.items():
        setattr(ds, name, value)
    return part10_bytes(ds)


# --- instance, series, study retrieve -------------------------------------------------


def test_instance_default_is_the_stored_bytes_in_multipart(server: Server) -> None:
    data = bundled("MR_small_jpeg_ls_lossless.dcm")
    response = server.client.get(server.add(data))
    assert response.status_code == 200
    (part,) = parts_of(response)
    assert part.body == data
    assert "transfer-syntax=1.2.840.10008.1.2.4.80" in part.content_type


def test_instance_transcoded_when_a_syntax_is_asked(server: Server) -> None:
    url = server.add(bundled("MR_small_jpeg_ls_lossless.dcm"))
    response = server.client.get(
        url,
        headers={
            "Accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.1"
        },
    )
    assert response.status_code == 200
    (part,) = parts_of(response)
    out = read(part.body)
    assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    np.testing.assert_array_equal(out.pixel_array, read(bundled("MR_small.dcm")).pixel_array)


def test_instance_406_when_the_syntax_cannot_be_produced(server: Server) -> None:
    url = server.add(bundled("MR_small.dcm"))
    response = server.client.get(
        url, headers={"Accept": "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50"}
    )
    assert response.status_code == 406
    assert "1.2.840.10008.1.2.4.50" in response.json()["detail"]


def test_instance_404_and_400(server: Server) -> None:
    assert server.client.get("/dicom-web/studies/1.2/series/1.3/instances/1.4").status_code == 404
    response = server.client.get("/dicom-web/studies/1.2/series/1.3/instances/abc")
    assert response.status_code == 400
    assert "SOPInstanceUID" in response.json()["detail"]


def test_a_deleted_instance_is_not_found_though_its_bytes_await_the_purge(
    server: Server,
) -> None:
    data = bundled("MR_small.dcm")
    url = server.add(data)
    header = read_header(data)
    scope = DeletionScope(study_instance_uid=header.study_instance_uid)
    server.pending_deletions.add("d1", scope)
    assert server.client.get(url).status_code == 200  # listed again (sent since)
    assert server.catalog is not None
    server.catalog.deleted.add(header.sop_instance_uid)
    for path in (url, f"{url}/frames/1", f"{url}/rendered"):
        assert server.client.get(path).status_code == 404, path
    server.pending_deletions.purged(header.study_instance_uid, "d1")
    assert server.client.get(url).status_code == 200  # (in truth the purge removed it)


def test_series_and_study_retrieve_every_instance(server: Server) -> None:
    first = ct_dataset("1.2.3", "1.2.3.4", 1, size=16)
    second = ct_dataset("1.2.3", "1.2.3.4", 2, size=16)
    other_series = ct_dataset("1.2.3", "1.2.3.5", 1, size=16)
    for ds in (first, second, other_series):
        server.add(part10_bytes(ds))
    series = parts_of(server.client.get("/dicom-web/studies/1.2.3/series/1.2.3.4"))
    assert {read(p.body).SOPInstanceUID for p in series} == {
        first.SOPInstanceUID,
        second.SOPInstanceUID,
    }
    study = server.client.get(
        "/dicom-web/studies/1.2.3",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert len(parts_of(study)) == 3


def test_series_transcodes_each_instance(server: Server) -> None:
    server.add(small_ct())
    response = server.client.get(
        "/dicom-web/studies/1.2.3/series/1.2.3.4",
        headers={
            "Accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.5"
        },
    )
    (part,) = parts_of(response)
    assert read(part.body).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"


def test_study_errors_say_why(server: Server) -> None:
    response = server.client.get("/dicom-web/studies/1.2.999")
    assert response.status_code == 404
    assert "1.2.999" in response.json()["detail"]
    server.catalog = None
    assert server.client.get("/dicom-web/studies/1.2.999").status_code == 503


# --- frames and bulk data -------------------------------------------------------------


def test_ohif_frame_request_gets_the_stored_jpeg_ls_frame(server: Server) -> None:
    data = bundled("MR_small_jpeg_ls_lossless.dcm")
    response = server.client.get(server.add(data) + "/frames/1", headers={"Accept": OCTET_ANY})
    assert response.status_code == 200
    (part,) = parts_of(response)
    media_type, params = parse_content_type(part.content_type)
    assert media_type == "image/jls"
    assert params["transfer-syntax"] == "1.2.840.10008.1.2.4.80"
    assert part.body[:2] == b"\xff\xd8"  # a JPEG-LS codestream, as stored
    assert len(part.body) < 8192


def test_octet_stream_frames_are_decompressed(server: Server) -> None:
    url = server.add(bundled("MR_small_jpeg_ls_lossless.dcm"))
    response = server.client.get(url + "/frames/1")
    (part,) = parts_of(response)
    assert part.content_type.startswith("application/octet-stream")
    reference = read(bundled("MR_small.dcm")).pixel_array
    assert part.body == reference.astype("<i2").tobytes()


def test_native_multiframe_frames_are_sliced(server: Server) -> None:
    data = bundled("rtdose.dcm")
    url = server.add(data)
    response = server.client.get(url + "/frames/2,15", headers={"Accept": OCTET_ANY})
    second, last = parts_of(response)
    reference = read(data).pixel_array
    assert second.body == reference[1].astype("<u4").tobytes()
    assert last.body == reference[14].astype("<u4").tobytes()
    assert "transfer-syntax=1.2.840.10008.1.2.1" in second.content_type


def test_frames_compressed_on_request(server: Server) -> None:
    data = small_ct()
    response = server.client.get(
        server.add(data) + "/frames/1", headers={"Accept": 'multipart/related; type="image/jls"'}
    )
    (part,) = parts_of(response)
    assert part.content_type == "image/jls; transfer-syntax=1.2.840.10008.1.2.4.80"
    pixels = jpeg_ls.decode(np.frombuffer(part.body, dtype=np.uint8))
    np.testing.assert_array_equal(pixels, read(data).pixel_array)


def test_bad_frame_numbers(server: Server) -> None:
    url = server.add(bundled("rtdose.dcm"))
    for frame_list, status, words in (
        ("16", 404, "15 frame"),
        ("0", 400, "start at 1"),
        ("1,x", 400, "'x'"),
    ):
        response = server.client.get(f"{url}/frames/{frame_list}")
        assert response.status_code == status, frame_list
        assert words in response.json()["detail"]


def test_frames_406_for_an_unproducible_media_type(server: Server) -> None:
    url = server.add(small_ct())
    response = server.client.get(url + "/frames/1", headers={"Accept": "image/jpeg"})
    assert response.status_code == 406
    assert "image/jpeg" in response.json()["detail"]


def test_bulkdata_pixel_data_and_nested_values(server: Server) -> None:
    ds = ct_dataset("1.2.3", "1.2.3.4", 1, size=16)
    item = Dataset()
    item.RadiopharmaceuticalStartTime = "101500"
    ds.RadiopharmaceuticalInformationSequence = [item]
    ds.add_new(0x00420011, "OB", b"%PDF-1.4 not really")
    url = server.add(part10_bytes(ds))
    pixels = parts_of(server.client.get(url + "/bulkdata/7FE00010"))
    assert [p.body for p in pixels] == [ds.PixelData]
    nested = parts_of(server.client.get(url + "/bulkdata/00540016/0/00181072"))
    assert nested[0].body.rstrip() == b"101500"
    single = server.client.get(
        url + "/bulkdata/00420011", headers={"Accept": "application/octet-stream"}
    )
    assert single.content == b"%PDF-1.4 not really\x00"[: len(single.content)]
    assert server.client.get(url + "/bulkdata/00540016/3/00181072").status_code == 404
    assert server.client.get(url + "/bulkdata/00540016/0").status_code == 400
    assert server.client.get(url + "/bulkdata/XYZ").status_code == 400


# --- rendered and thumbnails ----------------------------------------------------------


def image_of(response: Any) -> Image.Image:
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def test_rendered_instance_is_a_jpeg_windowed_from_the_object(server: Server) -> None:
    url = server.add(small_ct(WindowCenter=2048, WindowWidth=4096))
    response = server.client.get(url + "/rendered")
    assert response.headers["content-type"] == "image/jpeg"
    image = image_of(response)
    assert image.size == (64, 64)
    assert 100 < np.asarray(image).mean() < 155  # uniform noise over the whole window


def test_rendered_window_query_and_png(server: Server) -> None:
    url = server.add(small_ct())
    narrow = image_of(
        server.client.get(url + "/rendered?window=0,1", headers={"Accept": "image/png"})
    )
    assert narrow.format == "PNG"
    assert np.asarray(narrow).min() == 255  # every value is above a window at 0


def test_monochrome1_is_inverted(server: Server) -> None:
    plain = image_of(server.client.get(server.add(small_ct()) + "/rendered?window=0,1"))
    ds = ct_dataset("1.2.3", "1.2.3.9", 1, size=64)
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = image_of(server.client.get(server.add(part10_bytes(ds)) + "/rendered?window=0,1"))
    assert np.asarray(plain).mean() > 250 and np.asarray(inverted).mean() < 5


def test_rendered_viewport_keeps_aspect(server: Server) -> None:
    url = server.add(bundled("ExplVR_BigEnd.dcm"))  # 640 x 480 RGB
    image = image_of(server.client.get(url + "/rendered?viewport=320,320&quality=50"))
    assert image.size == (320, 240)
    assert image.mode == "RGB"


@pytest.mark.parametrize(
    "name",
    ["MR_small_jp2klossless.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", "MR_small_RLE.dcm", "rtdose.dcm"],
)
def test_rendered_from_compressed_sources(server: Server, name: str) -> None:
    image = image_of(server.client.get(server.add(bundled(name)) + "/frames/1/rendered"))
    assert np.asarray(image).std() > 5


def test_rendered_bad_parameters_say_why(server: Server) -> None:
    url = server.add(small_ct())
    for query, words in (
        ("window=abc,1", "numbers"),
        ("window=1,2,cubic", "cubic"),
        ("viewport=0,10", "viewport"),
        ("viewport=10", "viewport"),
    ):
        response = server.client.get(f"{url}/rendered?{query}")
        assert response.status_code == 400, query
        assert words in response.json()["detail"]
    assert server.client.get(url + "/rendered", headers={"Accept": "image/gif"}).status_code == 406


def test_thumbnails_at_every_level(server: Server) -> None:
    for number in (1, 2, 3):
        server.add(part10_bytes(ct_dataset("1.2.3", "1.2.3.4", number, size=256)))
    url = server.add(bundled("rtdose.dcm"))
    for path in (
        "/dicom-web/studies/1.2.3/thumbnail",
        "/dicom-web/studies/1.2.3/series/1.2.3.4/thumbnail",
        url + "/thumbnail",
        url + "/frames/3/thumbnail",
    ):
        image = image_of(server.client.get(path))
        assert max(image.size) <= 128, path


def test_series_rendered_is_multipart(server: Server) -> None:
    for number in (1, 2):
        server.add(part10_bytes(ct_dataset("1.2.3", "1.2.3.4", number, size=32)))
    parts = parts_of(server.client.get("/dicom-web/studies/1.2.3/series/1.2.3.4/rendered"))
    assert [p.content_type for p in parts] == ["image/jpeg", "image/jpeg"]


# --- WADO-URI -------------------------------------------------------------------------


def test_wado_uri(server: Server) -> None:
    data = bundled("MR_small_RLE.dcm")
    header = read_header(data)
    base = (
        f"/wado?requestType=WADO&studyUID={header.study_instance_uid}"
        f"&seriesUID={header.series_instance_uid}&objectUID={header.sop_instance_uid}"
    )
    server.add(data)
    assert image_of(server.client.get(base)).format == "JPEG"
    png = image_of(
        server.client.get(base + "&contentType=image/png&rows=32&windowCenter=600&windowWidth=1200")
    )
    assert png.format == "PNG" and png.size == (32, 32)
    dicom = server.client.get(base + "&contentType=application/dicom")
    assert dicom.content == data
    native = server.client.get(
        base + "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.1"
    )
    assert read(native.content).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    bad = server.client.get(base.replace("WADO&", "WADX&"))
    assert bad.status_code == 400 and "requestType" in bad.json()["detail"]
    assert server.client.get(base + "&contentType=text/html").status_code == 400
    assert server.client.get(base + "&frameNumber=2").status_code == 404


# --- CORS -----------------------------------------------------------------------------


def test_cors_allows_local_viewers_only() -> None:
    app = FastAPI()
    app.include_router(wado.router)
    add_cors(app, Settings())
    client = TestClient(app)
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "accept"}
    local = client.options(
        "/dicom-web/studies/1.2", headers={"Origin": "http://localhost:3000", **preflight}
    )
    assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
    remote = client.options(
        "/dicom-web/studies/1.2", headers={"Origin": "http://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in remote.headers
