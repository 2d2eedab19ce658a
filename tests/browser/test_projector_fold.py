"""A projector (1280 x 720) in presentation mode: each explainer page's first figure is on screen
without scrolling, and no figure is taller than the screen under the control bar.

Starts the app on a free localhost port and drives the system's Chromium through Playwright (no
browser download); skipped where Chromium or Playwright is missing. Screenshots of each page as
it opens go to test-artifacts/projector/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import time

import pytest

from tests.support.browser import CHROMIUM, ROOT, settle

SHOTS = ROOT / "test-artifacts" / "projector"
W, H = 1280, 720
QUERY = "?present=1&sample=shapes-star.png"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")

# The explainer pages, by URL path. A page that cannot meet the rule goes into CANNOT with the
# reason, and is then expected to fail (strict: it must be taken off the list once it passes).
PAGES = ("overview", "patches", "embedding", "positions", "self-attention", "attention", "prediction")
CANNOT: dict[str, str] = {}

# Every st.image picture and plotly chart of the main area, outside the control bar and popovers,
# in page order: its box, and whether it has been drawn (images loaded, plotly's SVG in place).
FIGURES_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return [];
  const els = [...main.querySelectorAll('[data-testid="stImage"] img, [data-testid="stPlotlyChart"]')]
    .filter(e => !e.closest('.st-key-vx_navbar') && !e.closest('[data-testid="stPopover"]')
                 && !e.closest('[data-testid="stPopoverBody"]'));
  return els.map(e => {
    const r = e.getBoundingClientRect();
    const drawn = e.tagName === 'IMG' ? (e.complete && e.naturalWidth > 0) : !!e.querySelector('.main-svg');
    return {kind: e.tagName === 'IMG' ? 'image' : 'plotly chart', top: r.top, bottom: r.bottom,
            height: r.height, width: r.width, drawn: drawn};
  });
}"""
SCROLL_JS = """() => { const c = [document.querySelector('[data-testid="stMainBlockContainer"]'),
    document.querySelector('[data-testid="stMain"]'),
    document.querySelector('[data-testid="stAppViewContainer"]'), document.scrollingElement];
    return Math.max(...c.filter(Boolean).map(e => e.scrollTop)); }"""


def figures_drawn(page, timeout_s: float = 90) -> list[dict]:
    """The page's figures once the first one is drawn and the layout has stopped moving."""
    end, last = time.time() + timeout_s, None
    while time.time() < end:
        figs = page.evaluate(FIGURES_JS)
        if figs and figs[0]["drawn"] and figs[0]["height"] > 50:
            boxes = [(round(f["top"]), round(f["bottom"])) for f in figs]
            if boxes == last:  # the same two polls in a row: settled
                return figs
            last = boxes
        time.sleep(1.0)
    raise AssertionError(f"no figure was drawn within {timeout_s:.0f} s: {page.evaluate(FIGURES_JS)}")


def open_slide(browser, server: str, path: str):
    page = browser.new_page(viewport={"width": W, "height": H})
    page.goto(f"{server}/{path}{QUERY}", wait_until="domcontentloaded")
    try:
        settle(page, 240)
    except Exception:  # a cold server (first model load on a busy machine): one more try
        page.reload(wait_until="domcontentloaded")
        settle(page, 240)
    page.wait_for_selector("#vit-present-mode", state="attached", timeout=30_000)
    return page


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=CANNOT[p]))
                                  if p in CANNOT else p for p in PAGES])
def test_first_figure_fits_a_projector_screen(server, browser, path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_slide(browser, server, path)
    try:
        figs = figures_drawn(page)
        page.screenshot(path=str(SHOTS / f"{path}-1280x720.png"))
        assert page.evaluate(SCROLL_JS) == 0, "the page scrolled by itself"
        bar = page.locator(".st-key-vx_navbar").bounding_box()
        assert bar is not None and bar["y"] >= -1, "no presentation control bar"
        under_bar = bar["y"] + bar["height"]
        first = figs[0]
        # fully on screen: below the fixed control bar, above the bottom edge, without scrolling
        assert first["top"] >= under_bar - 1, (path, first, under_bar)
        assert first["bottom"] <= H, f"{path}: the first {first['kind']} ends at {first['bottom']:.0f} px > {H}"
        # and nothing further down is taller than what the screen shows under the control bar
        room = H - under_bar
        tall = [f for f in figs if f["height"] > room]
        assert not tall, f"{path}: taller than the {room:.0f} px under the control bar: {tall}"
    finally:
        page.close()
