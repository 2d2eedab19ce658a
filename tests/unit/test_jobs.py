"""Background jobs: stop mid-run, one job per session, the global queue, the watchdog, saving."""
from __future__ import annotations

import time

import pytest

from vit_core.training import jobs

from vit_core.io import loading

from vit_core.training import runs
from vit_core.training.config import get_preset


def quick_cfg(**kw):
    base = dict(max_seconds=30, max_steps=None, val_size=40, num_threads=1, eval_every=3, snapshot_every=3,
                batch_size=16)
    return get_preset("shapes-quick", **{**base, **kw})


def waiter(job: runs.Job) -> None:
    """A fake run: one leg that 'trains' until stopped."""
    log = runs.RunLog("ViT", "vit")
    job.logs.append(log)
    while not job.stop_event.wait(0.01):
        pass
    log.reason = "stopped"


def wait_for(cond, timeout=20.0, every=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    return False


@pytest.fixture
def mgr():
    m = jobs.JobManager(max_running=1, heartbeat_timeout=30, watchdog_every=0.05, alive=lambda sid: None)
    yield m
    m.shutdown()


def test_stop_mid_run_saves_a_loadable_model(mgr, tmp_path):
    plan = runs.plan_train(quick_cfg(), save_dir=tmp_path, save_name="t", data_label="Shapes")
    job = mgr.submit("s1", plan)
    assert wait_for(lambda: job.logs and len(job.logs[0].steps) >= 4, timeout=120), job.error
    assert job.state == "running" and mgr.queue_position(job) == 0
    mgr.stop("s1")
    job.thread.join(30)
    assert job.state == "done" and job.stopped_by == "user"
    assert job.reason == "stopped"
    log = job.logs[0]
    assert log.steps[-1].step >= 4 and log.evals and log.snapshots
    assert log.snapshots[0].pos_similarity.shape[0] == 36  # 48 px / 8 px patches: 6 x 6
    assert job.saved is not None and job.saved.with_suffix(".json").is_file()
    assert loading.list_user_models(tmp_path) == [job.saved]
    loaded = loading.load_model(f"file:{job.saved}")
    assert loaded.model.cfg.img_size == 48 and len(loaded.class_names) == 10


def test_one_job_per_session(mgr):
    plan = runs.plan_train(quick_cfg())
    job = mgr.submit("s1", plan, runner=waiter)
    with pytest.raises(jobs.JobBusy):
        mgr.submit("s1", plan, runner=waiter)
    other = mgr.submit("s2", plan, runner=waiter)  # another session may queue
    assert other is not job
    mgr.stop("s1")
    job.thread.join(5)
    again = mgr.submit("s1", plan, runner=waiter)  # once finished, a new run is fine
    assert again.id != job.id and mgr.get("s1") is again


def test_global_cap_queues_the_second_session(mgr):
    plan = runs.plan_train(quick_cfg())
    a = mgr.submit("a", plan, runner=waiter)
    assert wait_for(lambda: a.state == "running")
    b = mgr.submit("b", plan, runner=waiter)
    c = mgr.submit("c", plan, runner=waiter)
    time.sleep(0.2)
    assert b.state == "queued" and mgr.queue_position(b) == 1 and mgr.queue_position(c) == 2
    assert mgr.running() == 1
    mgr.stop("c")  # leaving the queue is allowed too
    assert wait_for(lambda: c.state == "done") and c.reason == "stopped"
    mgr.stop("a")
    assert wait_for(lambda: b.state == "running")
    assert mgr.queue_position(b) == 0 and a.state == "done"


def test_watchdog_stops_a_job_whose_heartbeat_is_stale():
    m = jobs.JobManager(max_running=2, heartbeat_timeout=0.3, watchdog_every=0.05, alive=lambda sid: None,
                        purge_after=0.6)
    try:
        kept = m.submit("here", runs.plan_train(quick_cfg()), runner=waiter)
        gone = m.submit("gone", runs.plan_train(quick_cfg()), runner=waiter)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # only "here" keeps beating
            m.heartbeat("here")
            time.sleep(0.05)
        assert wait_for(lambda: gone.state == "done", timeout=5)
        assert gone.stopped_by == "session closed" and "tab was closed" in gone.reason
        assert kept.state == "running"
        assert wait_for(lambda: m.get("gone") is None, timeout=5)  # memory freed
    finally:
        m.shutdown()


def test_watchdog_spares_a_connected_session_on_another_page():
    m = jobs.JobManager(heartbeat_timeout=0.1, watchdog_every=0.05, alive=lambda sid: True)
    try:
        job = m.submit("s", runs.plan_train(quick_cfg()), runner=waiter)
        time.sleep(0.5)
        assert job.state == "running"
    finally:
        m.shutdown()


def test_divergence_is_explained(mgr):
    plan = runs.plan_train(quick_cfg(lr=1e4, warmup_steps=1, grad_clip=0.0, max_seconds=20))
    job = mgr.submit("s", plan)
    job.thread.join(60)
    assert job.reason.startswith("diverged") and "learning rate" in job.reason
    assert job.saved is None
