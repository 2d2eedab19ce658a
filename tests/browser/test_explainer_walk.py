"""The explainer walk in a real browser: upload a photo through the file chooser, visit every
explainer page, click a patch on the attention page, download a PNG.

Drives the system's Chromium through Playwright (never downloaded); skipped where either is
missing. Screenshots (1280 x 720) go to test-artifacts/explainer/ (git-ignored) for a human to
look at.
"""
from __future__ import annotations

import io
import re
import shutil
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, ROOT, app_server, settle

SHOTS = ROOT / "test-artifacts" / "explainer"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")

# (navigation label, page title) in lecture order: the explainer's steps
WALK = [
    ("Overview: 16x16 words", "An image is worth 16x16 words"),
    ("1 · Patches", "1 · Patches"),
    ("2 · Patch embedding", "2 · Patch embedding"),
    ("3 · Position embeddings", "3 · Position embeddings"),
    ("4 · Self-attention", "4 · Self-attention"),
    ("5 · Attention maps", "5 · Attention maps"),
    ("6 · Prediction", "6 · Prediction"),
]


@pytest.fixture(scope="module")
def page():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with app_server() as base, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
        pg = ctx.new_page()
        pg.goto(base + "/")
        settle(pg)
        yield pg
        browser.close()


def _no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()[:2000]


def test_walk_with_an_uploaded_photo(page, tmp_path):
    photo = tmp_path / "my_photo.jpg"
    shutil.copy(ROOT / "assets" / "samples" / "grace_hopper.jpg", photo)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Upload", exact=True).click()
    with page.expect_file_chooser() as chooser:
        sidebar.get_by_role("button", name=re.compile("Browse files|Upload")).first.click()
    chooser.value.set_files(str(photo))
    sidebar.get_by_text("my_photo.jpg").first.wait_for(timeout=60_000)
    settle(page)
    page.get_by_text(re.compile(r"Analysed in \d+ ms")).first.wait_for(timeout=60_000)
    for label, title in WALK:
        sidebar.locator('[data-testid="stSidebarNav"]').get_by_text(label, exact=True).click()
        page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
        settle(page)
        _no_exception(page)
        # the upload survives the page change: still in the uploader, not a sample
        assert sidebar.get_by_text("my_photo.jpg").count() >= 1, title
        page.screenshot(path=str(SHOTS / f"{WALK.index((label, title))}-{re.sub(r'[^a-z]+', '-', title.lower()).strip('-')}.png"))
    # On another page the uploader is empty and the kept upload is named in a caption; upload
    # here again, then remove it in the widget: the app goes back to a sample image.
    assert sidebar.get_by_text("Showing your upload").count() == 1
    with page.expect_file_chooser() as chooser:
        sidebar.get_by_role("button", name=re.compile("Browse files|Upload")).first.click()
    chooser.value.set_files(str(photo))
    remove = sidebar.get_by_role("button", name="Remove my_photo.jpg")
    remove.wait_for(timeout=60_000)
    settle(page)
    remove.click()
    sidebar.get_by_text("Sample image").first.wait_for(timeout=60_000)
    settle(page)
    assert sidebar.get_by_text("my_photo.jpg").count() == 0
    _no_exception(page)


def test_click_a_patch_then_download(page):
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.locator('[data-testid="stSidebarNav"]').get_by_text("5 · Attention maps", exact=True).click()
    page.get_by_role("heading", name="Click a patch: where does it look?").wait_for(timeout=60_000)
    settle(page)
    before = parse_qs(urlsplit(page.url).query).get("att_q")
    picker = page.locator(".st-key-att_pick")
    picker.scroll_into_view_if_needed()
    points = picker.locator(".scatterlayer path.point")
    assert points.count() == 196  # one clickable marker per patch of the 14 x 14 grid
    points.nth(17).click(force=True)  # patch 17 = row 1, column 3 -> query token 18 (after [CLS])
    page.wait_for_function("() => new URL(location.href).searchParams.get('att_q') === '18'", timeout=60_000)
    settle(page)
    assert before != ["18"]
    page.get_by_text(re.compile(r"patch 17 \(row 2, col 4\)|patch 17")).first.wait_for(timeout=30_000)
    _no_exception(page)
    page.screenshot(path=str(SHOTS / "attention-clicked.png"), full_page=False)
    page.locator(".st-key-att_dl_mosaic_dc button:visible").first.click()  # the mosaic's popover: its PNG draws once open
    png = page.get_by_role("button", name="Download PNG")
    png.first.wait_for(timeout=30_000)
    with page.expect_download(timeout=60_000) as dl:
        png.first.click()
    data = open(dl.value.path(), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    assert img.width > 500 and img.height > 500  # the full-size layers x heads mosaic, not a thumbnail
    assert dl.value.suggested_filename == "cls-attention-layers-heads.png"
