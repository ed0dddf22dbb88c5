"""/viewer on a small dist laid out like the npm @ohif/app build (no servers: no lifespan)."""

from __future__ import annotations

import gzip
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from api.app import create_app
from infra.settings import Settings
from tests.unit.api.auth import ADMIN, authenticator

INDEX = (
    '<!doctype html><html><head><script>window.PUBLIC_URL="/"</script>'
    '<link rel="manifest" href="/manifest.json"><link rel="icon" href="/assets/favicon.ico">'
    '<script src="/app-config.js"></script><script src="https://cdn.example/x.js"></script>'
    '<script>function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"</script>'
    '<script defer src="/app.bundle.0f6159c501addfe9.js"></script>'
    '<link href="/app.bundle.css" rel="stylesheet"></head><body></body></html>'
)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    # A folder named like an API prefix: the API must still answer its own routes.
    (root / "health").mkdir()
    (root / "health" / "live").write_text("not the API")
    (root / "index.html").write_text(INDEX)
    (root / "app-config.js").write_text("window.config = {upstream: true};")
    (root / "app.bundle.0f6159c501addfe9.js").write_text("console.log('app')")
    (root / "app.bundle.css").write_text("body{}")
    (root / "8478.bundle.4520037e6185b95f.js").write_text("chunk")
    (root / "8478.bundle.4520037e6185b95f.js.gz").write_bytes(gzip.compress(b"chunk"))
    (root / "0ddf166f7a343eda.wasm").write_bytes(b"\0asm\1\0\0\0")
    (root / "manifest.json").write_text("{}")
    (root / "assets" / "favicon.ico").write_bytes(b"\0\0\1\0")
    (tmp_path / "secret.txt").write_text("outside the dist")
    return root


def client(viewer_dir: Path) -> httpx.AsyncClient:
    app = create_app(Settings(viewer_dir=viewer_dir), run_projectors=False)
    app.state.services = SimpleNamespace(authenticator=authenticator(), recorder=None)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pacs", headers=ADMIN
    )


async def test_index_is_rewritten_for_viewer_prefix(dist: Path) -> None:
    async with client(dist) as http:
        for path in ("/viewer", "/viewer/", "/viewer/viewer", "/viewer/dicomweb"):
            response = await http.get(path, params={"StudyInstanceUIDs": "1.2.3"})
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith("text/html")
            assert response.headers["cache-control"] == "no-cache"
            html = response.text
            assert 'window.PUBLIC_URL="/"' not in html
            assert html.count('window.PUBLIC_URL="/viewer/"') == 2
            assert 'src="/viewer/app-config.js"' in html
            assert 'src="/viewer/app.bundle.0f6159c501addfe9.js"' in html
            assert 'href="/viewer/assets/favicon.ico"' in html
            assert 'src="https://cdn.example/x.js"' in html


async def test_pages_send_a_browser_without_a_login_to_the_login_page(dist: Path) -> None:
    async with client(dist) as http:
        anonymous = {"Authorization": ""}
        for path in ("/viewer", "/viewer/viewer?StudyInstanceUIDs=1.2.3", "/viewer/index.html"):
            response = await http.get(path, headers=anonymous)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=/viewer")
        # The app's code and our config are not PHI: they load without a login.
        assert (await http.get("/viewer/app-config.js", headers=anonymous)).status_code == 200
        shown = await http.get("/viewer/viewer?StudyInstanceUIDs=1.2.3", headers=anonymous)
        assert shown.headers["location"] == "/login?next=/viewer/viewer%3FStudyInstanceUIDs%3D1.2.3"


async def test_app_config_points_ohif_at_our_dicomweb_root(dist: Path) -> None:
    async with client(dist) as http:
        response = await http.get("/viewer/app-config.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    config = response.text
    assert "upstream" not in config
    assert 'routerBasename: "/viewer"' in config
    assert 'window.location.origin + "/dicom-web"' in config
    assert "@ohif/extension-default.dataSourcesModule.dicomweb" in config
    for setting in ("qidoRoot: root", "wadoRoot: root", 'imageRendering: "wadors"'):
        assert setting in config


async def test_assets_have_media_types_and_cache_policy(dist: Path) -> None:
    async with client(dist) as http:
        chunk = await http.get("/8478.bundle.4520037e6185b95f.js")
        wasm = await http.get("/0ddf166f7a343eda.wasm")
        css = await http.get("/viewer/app.bundle.css")
        icon = await http.get("/assets/favicon.ico")
        again = await http.get(
            "/viewer/app.bundle.css", headers={"If-None-Match": css.headers["etag"]}
        )
    assert chunk.status_code == 200 and chunk.text == "chunk"
    assert chunk.headers["content-type"].startswith("text/javascript")
    assert chunk.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert wasm.headers["content-type"] == "application/wasm"
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["cache-control"] == "no-cache"
    assert icon.status_code == 200 and icon.content == b"\0\0\1\0"
    assert again.status_code == 304


async def test_gzip_copy_goes_to_browsers_that_accept_it(dist: Path) -> None:
    name = "/8478.bundle.4520037e6185b95f.js"
    async with client(dist) as http:
        packed = await http.get(name, headers={"Accept-Encoding": "gzip, deflate, br"})
        plain = await http.get(name, headers={"Accept-Encoding": "identity"})
        listed = await http.get(name + ".gz")
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.text == "chunk"  # httpx decodes it, as a browser does
    assert packed.headers["content-type"].startswith("text/javascript")
    assert "Accept-Encoding" in packed.headers["vary"]
    assert "content-encoding" not in plain.headers and plain.text == "chunk"
    assert listed.status_code == 404  # the copies are not routes of their own at the root


async def test_root_answers_only_dist_files_and_never_shadows_the_api(dist: Path) -> None:
    async with client(dist) as http:
        health = await http.get("/health/live")
        assert health.json() == {"status": "ok"}
        assert (await http.get("/index.html")).status_code == 404
        assert (await http.get("/not-in-dist.bundle.js")).status_code == 404
        assert (await http.get("/viewer/missing.js")).status_code == 404
        leaked = await http.get("/viewer/%2e%2e/secret.txt")
        assert "outside the dist" not in leaked.text
        leaked = await http.get("/assets/%2e%2e/%2e%2e/secret.txt")
        assert "outside the dist" not in leaked.text


async def test_missing_viewer_says_how_to_install_it(tmp_path: Path) -> None:
    async with client(tmp_path / "nothing-here") as http:
        response = await http.get("/viewer")
        assert response.status_code == 503
        assert "make viewer" in response.json()["detail"]
        assert (await http.get("/viewer/viewer")).status_code == 503
        assert (await http.get("/app.bundle.0f6159c501addfe9.js")).status_code == 404
