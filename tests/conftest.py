"""Fixtures shared by every suite: a real app server and a headless Chromium.

unit/ tests the library, app/ runs pages under AppTest, browser/ drives Chromium against a real
server, load/ sends simulated classes to real servers. Shared helpers that are not fixtures live
in tests/support/.
"""
from __future__ import annotations

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, app_server


@pytest.fixture(scope="module")
def server():
    """A fresh `streamlit run app.py` on a free localhost port; its base URL."""
    with app_server() as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright (never a downloaded browser). Per module: Playwright's
    sync API keeps an event loop running in this thread while it is open, which breaks the next
    module's own sync_playwright() and any asyncio.run() in the load tests."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def bundled():
    """The bundled Shapes ViT (offline), loaded once for the whole run."""
    from vit_core.io import loading

    return loading.load_model("bundled:shapes-vit")
