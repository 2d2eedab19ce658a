"""A student's phone (390 x 844, touch) that followed the QR code: every page fits the screen.

Checks on every page of the talk: no horizontal scroll (document width equals the viewport),
the sidebar does not cover the page after navigating, and no plotly mode bar overlaps a figure
title. Screenshots go to test-artifacts/phone/.
"""
from __future__ import annotations

import time

import pytest

from pages._ui import present
from tests.support.browser import CHROMIUM, ROOT, settle

SHOTS = ROOT / "test-artifacts" / "phone"
pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")

WIDTH_JS = "() => [document.documentElement.scrollWidth, window.innerWidth]"
SIDEBAR_JS = """() => { const s = document.querySelector('[data-testid="stSidebar"]');
  if (!s) return 0; const r = s.getBoundingClientRect();
  return s.getAttribute('aria-expanded') === 'false' ? 0 : Math.max(0, Math.min(r.right, innerWidth) - Math.max(r.left, 0)); }"""
MODEBAR_JS = """() => { const out = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const bar = plot.querySelector('.modebar-container'); const title = plot.querySelector('.gtitle');
    if (!bar || !title) continue;
    const b = bar.getBoundingClientRect(), t = title.getBoundingClientRect();
    const visible = getComputedStyle(bar).display !== 'none' && b.width > 0;
    if (visible && b.left < t.right && t.left < b.right && b.top < t.bottom && t.top < b.bottom) out.push(title.textContent);
  } return out; }"""


def test_every_page_fits_a_phone(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                              device_scale_factor=2)
    page = ctx.new_page()
    problems = []
    for path, title, url, _ in present.talk():
        page.goto(f"{server}/{'' if path == present.talk()[0][0] else url}?sample=shapes-star.png",
                  wait_until="domcontentloaded")
        settle(page)
        time.sleep(1.0)
        doc_w, view_w = page.evaluate(WIDTH_JS)
        if doc_w > view_w:
            problems.append(f"{url}: document {doc_w} px wide on a {view_w} px screen")
        covered = page.evaluate(SIDEBAR_JS)
        if covered > 0:
            problems.append(f"{url}: the sidebar covers {covered:.0f} px of the page")
        over = page.evaluate(MODEBAR_JS)
        if over:
            problems.append(f"{url}: mode bar over titles {over}")
        page.screenshot(path=str(SHOTS / f"{url}-390x844.png"))
    ctx.close()
    assert not problems, "\n".join(problems)
