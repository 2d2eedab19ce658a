"""The training page in a real browser: start a short run, see the live view update on its own, stop it,
keep its model and open it in the explainer.

Needs Chromium on PATH (never downloaded here); skipped otherwise. Screenshots go to
$SHOTS_DIR (default /tmp/shots-train/).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, app_server

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-train"))

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"VIT_DATA_DIR": str(tmp_path_factory.mktemp("data")),
           "VIT_MODELS_DIR": str(tmp_path_factory.mktemp("models"))}  # the kept model goes there
    with app_server(env=env, timeout_s=90) as url:
        yield url


def step_value(page) -> int:
    box = page.locator('[data-testid="stMetric"]').filter(has_text="Step").first
    text = box.locator('[data-testid="stMetricValue"]').inner_text(timeout=5000)
    return int(text.replace(",", "") or 0)


def test_live_run_updates_by_itself_and_stops(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"{server}/train", timeout=90_000)
        page.get_by_role("button", name="Train the ViT").wait_for(timeout=90_000)
        page.screenshot(path=str(SHOTS / "train-before.png"), full_page=True)
        page.get_by_role("button", name="Train the ViT").click()
        # The fragment refreshes once a second with no input from us: the step count must move.
        end = time.monotonic() + 120
        first = 0
        while time.monotonic() < end and first < 1:
            time.sleep(1)
            first = step_value(page)
        assert first >= 1, "no training step appeared"
        end = time.monotonic() + 60
        second = first
        while time.monotonic() < end and second <= first:
            time.sleep(1)
            second = step_value(page)
        assert second > first
        page.get_by_role("heading", name="Watch it learn", exact=True).wait_for(timeout=180_000)
        page.get_by_text("Val accuracy").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "train-live.png"), full_page=True)
        page.get_by_role("button", name="Stop").click()
        page.locator('[data-testid="stAlert"]').filter(has_text="Stopped").first.wait_for(timeout=60_000)
        # A stopped run is not saved by itself: only when asked.
        page.get_by_role("button", name="Keep this model").wait_for(timeout=60_000)
        assert page.get_by_role("button", name="Download (zip)").count() == 0
        page.get_by_role("button", name="Keep this model").click()
        page.get_by_role("button", name="Download (zip)").wait_for(timeout=120_000)
        page.screenshot(path=str(SHOTS / "train-stopped.png"), full_page=True)
        # The saved model opens in the explainer at once.
        page.get_by_role("button", name="Explain this model").click()
        page.wait_for_function("() => !location.pathname.includes('train')", timeout=60_000)  # overview: "/"
        page.wait_for_function("() => location.search.includes('Trained')", timeout=60_000)  # the picker's ?model=
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SHOTS / "train-explained.png"), full_page=True)
        browser.close()
