"""The OHIF viewer at /viewer opens a CT study stored through DIMSE (Debian chromium, headless).

A radiologist's path: log in on the login page (or, behind a proxy that authenticates, every
request carries a bearer token), the study list shows the study, clicking it and launching
the basic viewer renders the image; every request the viewer made to our server succeeded.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Request, Response, async_playwright
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.dicom_factory import ct_series, write_series
from tests.integration.conftest import ADMIN_PASSWORD, Platform, eventually, run

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PATIENT_ID = "VIEWER-0001"
PATIENT_NAME = "Viewer^Gradient"
SHOWN_NAME = "Viewer, Gradient"  # how OHIF's study list prints the PN
SIZE = 256
SLICES = 20
UI_TIMEOUT_MS = 60_000


def gradient_series() -> Iterator[Dataset]:
    """A small CT series whose pixels rise from left (0) to right (4095): easy to recognise."""
    ramp = np.linspace(0, 4095, SIZE).astype(np.uint16)
    for ds in ct_series(SLICES, size=SIZE, patient_id=PATIENT_ID):
        ds.PatientName = PATIENT_NAME
        ds.ImagePositionPatient = [0.0, 0.0, 2.5 * ds.InstanceNumber]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 2.5
        ds.StudyDescription = "Viewer gradient"
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.tile(ramp, (SIZE, 1)).tobytes()
        yield ds


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    return CHROMIUM


class OurRequests:
    """Every answer and network failure from our origin, to fail on any of them."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.seen: list[str] = []
        self.failed: list[str] = []

    def on_response(self, response: Response) -> None:
        if response.url.startswith(self.origin):
            self.seen.append(response.url)
            if response.status >= 400:
                self.failed.append(f"{response.status} {response.request.method} {response.url}")

    def on_failed(self, request: Request) -> None:
        if request.url.startswith(self.origin):
            self.failed.append(f"network {request.failure} {request.method} {request.url}")


async def dismiss_if_shown(page: Page, name: str) -> None:
    """OHIF's first-run banner and tour cover the viewport: close them when they appear."""
    button = page.get_by_role("button", name=name)
    try:
        await button.first.click(timeout=5_000)
    except Exception:  # noqa: BLE001 - absent in some builds; nothing to dismiss then
        return


def gray(png: bytes) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)


async def viewport_pixels(page: Page) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The centre square of the viewport canvas as shown on screen (grayscale)."""
    png = await page.locator("canvas.cornerstone-canvas").first.screenshot()
    pixels = gray(png)
    height, width = pixels.shape
    side = int(min(height, width) * 0.6)
    top, left = (height - side) // 2, (width - side) // 2
    return pixels[top : top + side, left : left + side]


async def log_in(page: Page, origin: str, target: str) -> None:
    """The login page, as a user fills it in; it sends the browser on to `target`."""
    await page.goto(f"{origin}{target}")
    await page.wait_for_url(re.compile(r"/login\?next="))
    await page.get_by_label("User name").fill("admin")
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(re.escape(f"{origin}{target}") + "$"))


async def open_study(page: Page, origin: str, study_uid: str, login: bool) -> np.ndarray[Any, Any]:
    """Study list → click the study → Basic Viewer; the viewport's pixels once it has drawn."""
    # The list filtered by patient ID (OHIF's `mrn` URL filter, a QIDO wildcard query), as a
    # user would type it: a long test session may hold more studies than the first page.
    study_list = f"/viewer?mrn={PATIENT_ID}"
    if login:
        await log_in(page, origin, study_list)
    else:
        await page.goto(f"{origin}{study_list}")
    row = page.locator("tr", has_text=SHOWN_NAME).first
    await row.wait_for(state="visible")
    await dismiss_if_shown(page, "Confirm and hide")
    await row.click()
    await page.get_by_role("button", name="Basic Viewer").click()
    await page.wait_for_url(f"**/viewer/viewer?StudyInstanceUIDs={study_uid}*")
    await page.locator("canvas.cornerstone-canvas").first.wait_for(state="visible")
    await dismiss_if_shown(page, "Skip all")

    async def rendered() -> bool:
        return float((await viewport_pixels(page)).std()) > 20.0

    await eventually(rendered, timeout=60)
    # Let the viewer finish fetching the rest of the series before its requests are judged.
    await page.wait_for_load_state("networkidle")
    return await viewport_pixels(page)


async def test_viewer_opens_a_ct_study_stored_through_dimse(
    platform: Platform, dcmtk: None, chromium: str, tmp_path: Path
) -> None:
    async with httpx.AsyncClient() as http:
        anonymous = await http.get(f"{platform.http}/viewer", timeout=10)
        viewer = await http.get(f"{platform.http}/viewer", headers=platform.auth, timeout=10)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/viewer"
    assert viewer.status_code == 200, f"/viewer answered {viewer.status_code}: {viewer.text}"

    files = write_series(tmp_path / "ct", gradient_series())
    host, port = platform.dicom
    aet = platform.settings.dicom.ae_title
    stored = run(["storescu", "-aec", aet, host, str(port), *map(str, files)])
    assert stored.returncode == 0, stored.stderr
    study_uid = dcmread(files[0], stop_before_pixels=True).StudyInstanceUID

    last_answer = "none"

    async def listed() -> bool:
        nonlocal last_answer
        response = await asyncio.to_thread(
            platform.get, "/dicom-web/studies", params={"StudyInstanceUID": study_uid}
        )
        last_answer = f"{response.status_code} {response.text[:300]}"
        return response.status_code == 200 and len(response.json()) == 1

    try:
        await eventually(listed, timeout=30)
    except AssertionError:
        pytest.fail(f"QIDO never listed study {study_uid}; last answer: {last_answer}")

    # Logged in on the login page (a session cookie), with the study in the hot tier; then,
    # the study moved to the cold tier, as a client whose every request carries the bearer
    # token (what an authenticating proxy in front of the viewer does).
    await _view_study(platform, chromium, tmp_path / "login", study_uid, login=True)
    await move_to(platform, study_uid, "cold")
    await _view_study(platform, chromium, tmp_path / "bearer", study_uid, login=False)


async def move_to(platform: Platform, study_uid: str, tier: str) -> None:
    moved = await asyncio.to_thread(
        platform.post, f"/api/studies/{study_uid}/migrate", json={"tier": tier}
    )
    assert moved.status_code == 202, moved.text

    async def done() -> bool:
        job = await asyncio.to_thread(platform.get, moved.json()["status_url"])
        listed = await asyncio.to_thread(platform.get, f"/api/studies/{study_uid}/storage")
        return job.json()["status"] == "Completed" and {r["tier"] for r in listed.json()} == {tier}

    await eventually(done, timeout=60)


async def _view_study(
    platform: Platform, chromium: str, tmp_path: Path, study_uid: str, login: bool
) -> None:
    requests = OurRequests(platform.http)
    screenshot = tmp_path / "viewer.png"
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 800},
            extra_http_headers=None if login else platform.auth,
        )
        page = context.pages[0] if context.pages else await context.new_page()
        page.on("response", requests.on_response)
        page.on("requestfailed", requests.on_failed)
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            pixels = await open_study(page, platform.http, study_uid, login)
        except (PlaywrightError, AssertionError) as exc:
            stuck: BaseException | None = exc
        else:
            stuck = None
        finally:
            await page.screenshot(path=str(screenshot))
            await context.close()
    how = "after login" if login else "with a bearer token"
    if stuck is not None:
        failed = "\n".join(requests.failed) or "none"
        pytest.fail(
            f"the viewer did not show the study {how}: {stuck}\n"
            f"failed requests to our server:\n{failed}\nscreenshot: {screenshot}"
        )

    quarter = pixels.shape[1] // 4
    left, right = pixels[:, :quarter].mean(), pixels[:, -quarter:].mean()
    assert right > left + 40, (
        f"viewport {how} does not show the left-to-right ramp (left {left:.0f}, "
        f"right {right:.0f}); see {screenshot}"
    )
    assert any("/frames/" in url for url in requests.seen), "the viewer fetched no frames"
    assert not requests.failed, "requests to our server failed:\n" + "\n".join(requests.failed)
