"""The training page in a real browser: start a short run, see the live view update on its own, stop it.

Needs Chromium on PATH (never downloaded here); skipped otherwise. Screenshots go to
$SHOTS_DIR (default /tmp/shots-train/).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-train"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


def free_port(lo: int = 8550, hi: int = 8560) -> int:
    for port in range(lo, hi):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "VIT_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    models = ROOT / "models"
    before = set(models.glob("*")) if models.exists() else set()
    log = open(tmp_path_factory.mktemp("log") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
                             "--server.fileWatcherType=none", f"--server.port={port}",
                             "--server.address=127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while time.monotonic() < end:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the Streamlit server did not come up")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        for p in (set(models.glob("*")) if models.exists() else set()) - before:
            p.unlink()


def step_value(page) -> int:
    box = page.locator('[data-testid="stMetric"]').filter(has_text="Step").first
    text = box.locator('[data-testid="stMetricValue"]').inner_text(timeout=5000)
    return int(text.replace(",", "") or 0)


def test_live_run_updates_by_itself_and_stops(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
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
        page.get_by_role("button", name="Download (zip)").wait_for(timeout=120_000)
        page.screenshot(path=str(SHOTS / "train-stopped.png"), full_page=True)
        # The saved model opens in the explainer at once.
        page.get_by_role("button", name="Explain this model").click()
        page.wait_for_function("() => !location.pathname.includes('train')", timeout=60_000)  # overview: "/"
        page.wait_for_function("() => location.search.includes('Trained')", timeout=60_000)  # the picker's ?model=
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SHOTS / "train-explained.png"), full_page=True)
        browser.close()
