"""Lecture mode in a real browser: presentation mode at 1280 x 720, Next by keyboard, the handout.

Starts the app on a free localhost port and drives the system's Chromium through Playwright (no
browser download). Skipped where Chromium or Playwright is missing. Screenshots go to
test-artifacts/lecture/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import time

import pytest

from tests.support.browser import CHROMIUM, ROOT, app_server, settle

SHOTS = ROOT / "test-artifacts" / "lecture"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")


def test_presentation_mode_on_a_projector(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    # A deep link as the very first request of a fresh server (see pages/_ui/st_private.leave_legacy_pages_mode).
    page.goto(server + "/history?present=1&sample=shapes-star.png", wait_until="domcontentloaded")
    settle(page)
    assert page.locator("h1").first.inner_text() == "A brief history"
    from pages._ui import present

    pages = present.talk()
    assert page.get_by_text(f"2 / {len(pages)}", exact=True).is_visible()  # the talk's order
    page.wait_for_selector("#vit-present-mode", state="attached", timeout=30_000)
    assert not page.locator('[data-testid="stSidebar"]').is_visible()
    assert not page.locator('[data-testid="stHeader"]').is_visible()
    assert page.get_by_role("button", name="Why not pixels?").is_visible()
    size = page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert size >= 20  # large type
    page.screenshot(path=str(SHOTS / "present-history-1280x720.png"))

    # What a presenter's clicker sends: on a page taller than the screen, PageDown scrolls first,
    # the control bar stays in view, and only at the end of the page does it move on.
    scroll_js = """() => { const c = [document.querySelector('[data-testid="stMainBlockContainer"]'),
        document.querySelector('[data-testid="stMain"]'),
        document.querySelector('[data-testid="stAppViewContainer"]'), document.scrollingElement];
        const el = c.find(e => e && e.scrollHeight - e.clientHeight > 2) || document.scrollingElement;
        return [el.scrollTop, el.scrollHeight - el.clientHeight]; }"""
    top, room = page.evaluate(scroll_js)
    assert room > 50, "the history page should be taller than a 720p screen"
    page.keyboard.press("PageDown")
    time.sleep(1.0)
    assert "/history" in page.url, "PageDown changed page before the end of a long page"
    assert page.evaluate(scroll_js)[0] > top + 100
    bar = page.locator(".st-key-vx_navbar").bounding_box()
    assert bar is not None and bar["y"] >= -1 and bar["y"] < 80, bar  # sticky: still on screen
    assert page.get_by_role("button", name="Why not pixels?").is_visible()
    page.screenshot(path=str(SHOTS / "present-history-scrolled-1280x720.png"))
    for _ in range(40):  # each press scrolls 85 % of a screen, until the end of the page
        top, room = page.evaluate(scroll_js)
        if top >= room - 4:
            break
        page.keyboard.press("PageDown")
        time.sleep(0.3)
    assert "/history" in page.url
    page.keyboard.press("PageDown")  # at the end: now it moves on
    page.wait_for_url("**/pixels_as_tokens?**", timeout=60_000)
    page.wait_for_function("() => document.querySelector('h1') && "
                           "document.querySelector('h1').innerText === 'Why not pixels as tokens?'", timeout=60_000)
    settle(page)
    time.sleep(1.5)
    assert "present=1" in page.url and "sample=shapes-star.png" in page.url
    assert "22,658,678,784" in page.content()
    page.screenshot(path=str(SHOTS / "present-pixels-1280x720.png"))
    page.close()


def test_handout_downloads_and_opens_offline(server, browser, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    page = ctx.new_page()
    page.goto(server + "/", wait_until="domcontentloaded")
    settle(page)
    page.goto(server + "/history?sample=shapes-heart.png", wait_until="domcontentloaded")
    settle(page)
    page.get_by_role("button", name="Lecture tools").click()  # the sidebar's popover, drawn when opened
    handout = page.get_by_role("button", name="Handout of this image (HTML)")
    handout.wait_for(timeout=60_000)
    with page.expect_download(timeout=120_000) as dl:
        handout.click()
    path = tmp_path / "handout.html"
    dl.value.save_as(path)
    assert dl.value.suggested_filename == "vit-handout-shapes-heart.html"
    html = path.read_text("utf-8")
    assert html.count('src="data:image/png;base64,') >= 8
    # Open it with the network off: every figure must still load.
    ctx.set_offline(True)
    doc = ctx.new_page()
    doc.goto(path.as_uri())
    doc.wait_for_load_state("load")
    sizes = doc.evaluate("() => Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert sizes and all(w > 0 for w in sizes), sizes
    assert doc.locator("section").count() == 8
    doc.screenshot(path=str(SHOTS / "handout-top.png"))
    ctx.close()


def test_every_navigation_name_is_a_working_url(server, browser):
    """/overview (the first page's name) must open the overview, not "Page not found"."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(server + "/overview", wait_until="domcontentloaded")
    settle(page)
    assert "16x16" in page.locator("h1").first.inner_text()
    assert page.get_by_text("Page not found").count() == 0
    page.close()


@pytest.mark.parametrize("url", ["position_embeddings", "self_attention"])
def test_a_deep_link_is_the_first_request_of_a_fresh_server(browser, url):
    """The QR code's link may be the very first request a server gets: no "Page not found"."""
    with app_server() as base:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"{base}/{url}?sample=shapes-star.png", wait_until="domcontentloaded")
        settle(page)
        assert page.get_by_text("Page not found").count() == 0
        assert f"/{url}" in page.url
        page.close()
