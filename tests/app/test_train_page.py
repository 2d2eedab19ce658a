"""AppTest runs of the 'Train a ViT live' page: costs shown, offline datasets refused, a short run and Stop.

AppTest cannot run fragments on a timer, so progress is seen by calling ``at.run()`` repeatedly.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages._ui.site import USER_MODELS
from vit_core.training import jobs
from vit_core.model import VisionTransformer, count_params
from vit_core.training.config import PRESETS

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "train.py")


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str | None:
    return next((m.value for m in at.metric if m.label == label), None)


@pytest.fixture
def page(monkeypatch, tmp_path):
    monkeypatch.setenv("VIT_DATA_DIR", str(tmp_path / "data"))  # nothing cached: offline datasets
    before = set(USER_MODELS.glob("*")) if USER_MODELS.exists() else set()
    at = AppTest.from_file(PAGE, default_timeout=90)
    rerun(at)
    yield at
    mgr = jobs.manager()
    sid = at.session_state["_train_sid"]
    job = mgr.stop(sid)
    if job is not None and job.thread is not None:
        job.thread.join(60)
    mgr.forget(sid)
    for p in (set(USER_MODELS.glob("*")) if USER_MODELS.exists() else set()) - before:
        p.unlink()  # models this test saved


def test_costs_and_device_are_shown_before_starting(page):
    vit = PRESETS["shapes-quick"].vit  # the default layout
    assert metric(page, "Parameters") == f"{count_params(VisionTransformer(vit)):,}"
    assert metric(page, "FLOPs / image") == "9.2 M"
    assert metric(page, "CNN parameters") is not None
    assert any("Device:" in c.value for c in page.caption)
    page.selectbox(key="tr_layout").set_value("custom")
    rerun(page)
    page.selectbox(key="tr_width").set_value(128)
    rerun(page)
    assert metric(page, "Parameters") != f"{count_params(VisionTransformer(vit)):,}"


def test_offline_dataset_says_so_and_disables_training(page):
    t = time.monotonic()
    page.radio(key="tr_data").set_value("cifar10")
    rerun(page)
    assert time.monotonic() - t < 10
    assert any("offline" in e.value for e in page.error)
    assert page.button(key="tr_go").disabled


def test_short_run_shows_progress_and_stops(page):
    page.slider(key="tr_seconds").set_value(120)
    page.number_input(key="tr_eval").set_value(5)
    page.button(key="tr_go").click()
    rerun(page)
    assert page.button(key="tr_go").disabled and not page.button(key="tr_stop").disabled
    steps = []
    end = time.monotonic() + 120
    while time.monotonic() < end:
        time.sleep(0.5)
        rerun(page)
        s = metric(page, "Step")
        steps.append(int(s.replace(",", "")) if s else 0)
        if steps[-1] >= 6 and page.select_slider(key="tr_snap") is not None:
            break
    assert steps[-1] >= 6, steps
    assert any("on CPU" in i.value or "on GPU" in i.value for i in page.info)
    snap = page.select_slider(key="tr_snap")
    assert snap.value >= 5  # 'watch it learn' follows the newest snapshot
    gap = next(m.value for m in page.markdown if m.value.startswith("Grid neighbours vs positions"))
    assert re.search(r"a gap of \*\*[+-]\d\.\d\d\*\* at step \d+", gap), gap  # 6 x 6 grid: far pairs exist
    page.button(key="tr_stop").click()
    rerun(page)
    end = time.monotonic() + 60
    while time.monotonic() < end and not page.warning:
        time.sleep(0.3)
        rerun(page)
    assert any(w.value.startswith("Stopped") for w in page.warning), [w.value for w in page.warning]
    assert not page.button(key="tr_go").disabled
    job = jobs.manager().get(page.session_state["_train_sid"])
    assert job.reason == "stopped" and job.saved is not None and job.saved.is_file()
    assert any("Trained here" in s.value for s in page.success)  # listed in the model picker
    assert f"Trained here: {job.saved.stem}" in page.selectbox(key="model").options
