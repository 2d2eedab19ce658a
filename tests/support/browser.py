"""Shared by the browser tests: start the app on a free port, launch the system's Chromium, wait.

Never downloads a browser: Chromium comes from the system (apt), driven by Python Playwright.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(env: dict | None = None, timeout_s: float = 60, script: str = "app.py", log: Path | None = None):
    """``streamlit run SCRIPT`` on a free localhost port; yields the base URL once healthy.

    Args:
        log: a file for the server's output (discarded when None).
    """
    port = free_port()
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless=true", "--server.fileWatcherType=none",
         "--browser.gatherUsageStats=false"],
        cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.time() + timeout_s
        while True:
            try:
                if urllib.request.urlopen(base + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.time() > end or proc.poll() is not None:
                    raise RuntimeError("the app did not start") from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not None:
            out.close()


def settle(page, timeout_s: float = 120) -> None:
    """Wait for the page title, then for the app to stop running."""
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=timeout_s * 1000)
    end = time.time() + timeout_s
    while time.time() < end:
        time.sleep(0.5)
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            break
    time.sleep(1.0)
