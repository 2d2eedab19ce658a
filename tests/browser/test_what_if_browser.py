"""What if? in a real browser: click patches on the picker to hide them and watch the prediction
change; click one again to show it; the hidden set lives in the URL.

Drives the system's Chromium through Playwright (never downloaded); skipped where either is missing.
The screenshot (1280 x 720) goes to test-artifacts/what_if/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from tests.support.browser import CHROMIUM, ROOT, settle

SHOTS = ROOT / "test-artifacts" / "what_if"
SAMPLE = "shapes-arrow.png"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")


def _patches_that_flip() -> tuple[list[int], str]:
    """The fewest most-attended patches (rollout order) whose hiding changes the top class, as the
    app computes it for the default model and the sample; and the class predicted before."""
    from pages._ui import sidebar
    from vit_core.analysis import explain, interventions
    from vit_core.io import images, loading

    lm = loading.load_model(sidebar.default_spec())
    data = (ROOT / "assets" / "samples" / SAMPLE).read_bytes()
    a = explain.analyze(lm.model, lm.transform, lm.data_config, images.load_image(data))
    x = lm.transform(images.load_image(data)).unsqueeze(0)
    order = np.argsort(a.rollout[-1][0, a.num_prefix_tokens:])[::-1].tolist()
    pred = int(a.probs.argmax())
    for k in range(1, 26):
        probs = interventions.predict(lm.model, interventions.mask_patches(x, order[:k], a.patch_size))[0]
        if int(probs.argmax()) != pred:
            return order[:k], loading.class_name(lm.class_names, pred)
    return order[:12], loading.class_name(lm.class_names, pred)


def _hidden_line(page) -> str:
    return page.get_by_text(re.compile(r"patches hidden\. Prediction")).first.inner_text()


def _count_in_url(page, n: int) -> None:
    page.wait_for_function(f"() => new URL(location.href).searchParams.getAll('wi_masked').length === {n}",
                           timeout=60_000)


def _picker_points(page, version: int):
    """The markers of the patch picker drawn after ``version`` clicks, once all 196 are there."""
    points = page.locator(f".st-key-wi_pick_{version} .scatterlayer path.point")
    points.nth(195).wait_for(state="attached", timeout=60_000)
    return points


def test_click_patches_to_hide_them(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    clicks, before_name = _patches_that_flip()
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    # The home page first: as the very first request of a fresh server, a deep link to a page whose
    # URL path is not its file name (what-if vs what_if.py) opens Streamlit's "Page not found" dialog.
    page.goto(server + "/", wait_until="domcontentloaded")
    settle(page)
    page.goto(server + f"/what_if?sample={SAMPLE}", wait_until="domcontentloaded")
    settle(page)
    assert page.locator("h1").first.inner_text() == "What if?"
    first = _hidden_line(page)
    assert first.startswith("0 of ") and f"Prediction: {before_name}" in first, first
    picker = page.locator(".st-key-wi_picker")
    picker.scroll_into_view_if_needed()
    assert picker.locator(".scatterlayer path.point").count() == 196  # one marker per patch of 14 x 14

    for i, p in enumerate(clicks, start=1):
        # each click draws a fresh picker (key wi_pick_<clicks so far>): click the current one, once
        # the last click's run has drawn it (a click into a run still going can lose the one before)
        _picker_points(page, i - 1).nth(p).click(force=True)
        _count_in_url(page, i)
        page.get_by_text(re.compile(rf"^{i} of 196 patches hidden")).first.wait_for(timeout=60_000)
        _picker_points(page, i)
    settle(page)
    after = _hidden_line(page)
    assert after.startswith(f"{len(clicks)} of 196 patches hidden"), after
    assert not after.startswith(f"{len(clicks)} of 196 patches hidden. Prediction: {before_name} ("), after
    shown = {int(v) for v in re.findall(r"wi_masked=(\d+)", page.url)}
    assert shown == set(clicks)
    assert page.locator('[data-testid="stException"]').count() == 0
    picker.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "hidden-patches-1280x720.png"))

    # a second click on a hidden patch shows it again
    _picker_points(page, len(clicks)).nth(clicks[0]).click(force=True)
    _count_in_url(page, len(clicks) - 1)
    page.get_by_text(re.compile(rf"^{len(clicks) - 1} of 196 patches hidden")).first.wait_for(timeout=60_000)
    # and the button brings every patch back, with the prediction of the untouched image
    page.get_by_role("button", name="Show every patch again").click()
    _count_in_url(page, 0)
    page.get_by_text(re.compile(r"^0 of 196 patches hidden")).first.wait_for(timeout=60_000)
    assert _hidden_line(page) == first
