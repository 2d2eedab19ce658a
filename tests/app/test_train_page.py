"""AppTest runs of the 'Train a ViT live' page: costs shown, offline datasets refused, a short run,
Stop and Keep, and a class run watched by a second session.

AppTest cannot run fragments on a timer, so progress is seen by calling ``at.run()`` repeatedly.
Every AppTest shares one Streamlit session id, so each test session gets its own ``_train_sid``.
"""
from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages._ui.site import USER_MODELS
from vit_core.model import VisionTransformer, count_params
from vit_core.training import jobs
from vit_core.training.config import PRESETS

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "train.py")


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str | None:
    return next((m.value for m in at.metric if m.label == label), None)


def step_of(at: AppTest) -> int:
    s = metric(at, "Step")
    return int(s.replace(",", "")) if s else 0


def until(at: AppTest, cond, timeout: float = 120, every: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond(at):
            return True
        time.sleep(every)
        rerun(at)
    return cond(at)


def new_session(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state["_train_sid"] = f"test-{uuid.uuid4().hex[:8]}"
    at.query_params.update(query)
    return rerun(at)


def models_now() -> set[Path]:
    return set(USER_MODELS.rglob("*")) if USER_MODELS.exists() else set()


def end_session(at: AppTest) -> None:
    mgr = jobs.manager()
    sid = at.session_state["_train_sid"]
    job = mgr.stop(sid)
    if job is not None and job.thread is not None:
        job.thread.join(60)
    mgr.forget(sid)


@pytest.fixture
def sessions(monkeypatch, tmp_path):
    """New page sessions (``sessions()``); their jobs are stopped and the models they saved removed."""
    monkeypatch.setenv("VIT_DATA_DIR", str(tmp_path / "data"))  # nothing cached: offline datasets
    before = models_now()
    made: list[AppTest] = []

    def make(**query) -> AppTest:
        made.append(new_session(**query))
        return made[-1]

    yield make
    for at in made:
        end_session(at)
    jobs.manager().clear_class()
    for p in sorted(models_now() - before, key=lambda p: len(p.parts), reverse=True):
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)  # what these tests saved


@pytest.fixture
def page(sessions):
    return sessions()


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


def test_short_run_shows_progress_stops_and_keeps_only_on_request(page, sessions):
    page.slider(key="tr_seconds").set_value(120)
    page.number_input(key="tr_eval").set_value(5)
    page.button(key="tr_go").click()
    rerun(page)
    assert page.button(key="tr_go").disabled and not page.button(key="tr_stop").disabled
    steps = []

    def progressed(at):
        steps.append(step_of(at))
        return steps[-1] >= 6 and at.select_slider(key="tr_snap") is not None

    assert until(page, progressed), steps
    assert any("on CPU" in i.value or "on GPU" in i.value for i in page.info)
    snap = page.select_slider(key="tr_snap")
    assert snap.value >= 5  # 'watch it learn' follows the newest snapshot
    gap = next(m.value for m in page.markdown if m.value.startswith("Grid neighbours vs positions"))
    assert re.search(r"a gap of \*\*[+-]\d\.\d\d\*\* at step \d+", gap), gap  # 6 x 6 grid: far pairs exist
    page.button(key="tr_stop").click()
    rerun(page)
    assert until(page, lambda at: bool(at.warning), timeout=60)
    assert any(w.value.startswith("Stopped") for w in page.warning), [w.value for w in page.warning]
    assert not page.button(key="tr_go").disabled
    job = jobs.manager().get(page.session_state["_train_sid"])
    assert job.reason == "stopped" and job.saved is None and job.pending is not None  # not saved by itself
    assert not any("Trained here" in o for o in page.selectbox(key="model").options)
    page.button(key="tr_keep").click()
    rerun(page)
    assert job.saved is not None and job.saved.is_file() and job.pending is None
    assert any("Trained here" in s.value for s in page.success)  # listed in this session's model picker
    mine = f"Trained here: {job.saved.stem}"
    assert mine in page.selectbox(key="model").options
    assert any(e.label.startswith("Your trained models (1)") for e in page.expander)  # listed, downloadable
    other = sessions()
    assert mine not in other.selectbox(key="model").options  # ...and in no one else's
    assert not any(e.label.startswith("Your trained models") for e in other.expander)


def test_a_class_run_is_watched_by_a_second_session(sessions):
    lecturer = sessions(class_run="1")
    student = sessions()
    assert "tr_class" not in [t.key for t in student.toggle]  # the control is the lecturer's
    lecturer.slider(key="tr_seconds").set_value(60)
    lecturer.number_input(key="tr_eval").set_value(5)
    lecturer.toggle(key="tr_class").set_value(True)
    rerun(lecturer)
    lecturer.button(key="tr_go").click()
    rerun(lecturer)
    cls = jobs.manager().class_job()
    assert cls is not None and cls.class_run and cls.session_id == lecturer.session_state["_train_sid"]
    rerun(student)
    assert any(i.value.startswith("**Class run**") for i in student.info)
    assert not student.button(key="tr_go").disabled and student.button(key="tr_stop").disabled
    first = []
    assert until(student, lambda at: first.append(step_of(at)) or first[-1] >= 2, timeout=180), first
    assert until(student, lambda at: step_of(at) > first[-1])  # the same live run, read-only
    student.button(key="tr_go").click()  # a run of its own queues behind the class run
    rerun(student)
    queued = [i.value for i in student.info if i.value.startswith("Queued:")]
    assert queued and re.match(r"Queued: \*\*1\*\* in line, starting (in about \d|any moment)", queued[0]), queued
    assert any(i.value.startswith("**Class run**") for i in student.info)
    lecturer.button(key="tr_stop").click()
    rerun(lecturer)
    assert until(lecturer, lambda at: not cls.active, timeout=60)
