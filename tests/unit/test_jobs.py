"""Background jobs: worker processes, stop and keep, one job per session, the queue and its estimates,
the class run, the watchdog, and the model store (owners, the class folder, the disk bound)."""
from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from vit_core.io import loading
from vit_core.training import jobs, plans, runs
from vit_core.training.config import get_preset
from vit_core.training.store import CLASS, ModelStore, owner_of

A, B = "a" * 24, "b" * 24  # owner tokens


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


def fake_model(path, size: int, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    path.with_suffix(".json").write_text("{}")
    for f in (path, path.with_suffix(".json")):
        os.utime(f, (mtime, mtime))


# --- real runs in a worker process ----------------------------------------------------------------
def test_stop_mid_run_saves_only_a_kept_model_and_leaves_the_server_threads_alone(mgr, tmp_path):
    store = ModelStore(tmp_path)
    threads = torch.get_num_threads()
    plan = plans.plan_train(quick_cfg(num_threads=threads + 2), store=store, owner=A, save_name="t",
                            data_label="Shapes")
    job = mgr.submit("s1", plan)
    seen = set()

    def steps() -> bool:
        seen.add(torch.get_num_threads())
        return bool(job.logs and len(job.logs[0].steps) >= 4)

    assert wait_for(steps, timeout=180), job.error
    assert seen == {threads}  # the job's thread count is its worker process's, never the server's
    assert job.state == "running" and mgr.queue_position(job) == 0
    assert [p.pid for p in mgr.pool.processes()] and all(p.pid != os.getpid() for p in mgr.pool.processes())
    mgr.stop("s1")
    job.thread.join(60)
    assert job.state == "done" and job.stopped_by == "user"
    assert job.reason == "stopped"
    log = job.logs[0]
    assert log.steps[-1].step >= 4 and log.evals and log.snapshots and log.params > 0
    assert log.snapshots[0].pos_similarity.shape[0] == 36  # 48 px / 8 px patches: 6 x 6
    assert job.saved is None and job.pending is not None and store.listed(A) == []  # not saved unless kept
    saved = mgr.keep("s1")
    assert saved is not None and saved == job.saved and job.pending is None
    assert store.listed(A) == [saved] and saved.parent == tmp_path / A and saved.with_suffix(".json").is_file()
    loaded = loading.load_model(f"file:{saved}")
    assert loaded.model.cfg.img_size == 48 and len(loaded.class_names) == 10
    # a second run in the same session reuses the warm worker; its unkept weights are dropped
    again = mgr.submit("s1", plans.plan_train(quick_cfg(max_seconds=None, max_steps=2), store=store, owner=A))
    again.thread.join(120)
    assert again.state == "done" and again.reason == "finished" and again.saved is not None
    assert set(store.listed(A)) == {saved, again.saved}


def test_divergence_is_explained_and_nothing_is_saved(mgr, tmp_path):
    plan = plans.plan_train(quick_cfg(lr=1e4, warmup_steps=1, grad_clip=0.0, max_seconds=20),
                            store=ModelStore(tmp_path), owner=A)
    job = mgr.submit("s", plan)
    job.thread.join(120)
    assert job.reason.startswith("diverged") and "learning rate" in job.reason
    assert job.saved is None and job.pending is None and not list(tmp_path.rglob("*.safetensors"))


def test_a_dead_worker_ends_the_job_with_an_error_and_is_replaced(mgr):
    job = mgr.submit("s", plans.plan_train(quick_cfg()))
    assert wait_for(lambda: job.logs and job.logs[0].steps, timeout=180), job.error
    mgr.pool.processes()[0].kill()
    job.thread.join(30)
    assert job.state == "error" and "ended unexpectedly" in job.error
    nxt = mgr.submit("s", plans.plan_train(quick_cfg(max_seconds=None, max_steps=2)))
    nxt.thread.join(120)
    assert nxt.state == "done" and nxt.reason == "finished", nxt.error


def test_training_in_a_thread_shares_the_pool_without_changing_it(monkeypatch, tmp_path):
    monkeypatch.setenv("VIT_TRAIN_IN", "thread")
    m = jobs.JobManager(max_running=1)
    try:
        threads = torch.get_num_threads()
        plan = plans.plan_train(quick_cfg(max_seconds=None, max_steps=3, num_threads=threads + 2),
                                store=ModelStore(tmp_path), owner=A)
        job = m.submit("t", plan)
        job.thread.join(120)
        assert job.state == "done" and job.reason == "finished", job.error
        assert job.saved is not None and ModelStore(tmp_path).listed(A) == [job.saved]  # ran to the end: saved
        assert torch.get_num_threads() == threads and not m.pool.processes()
        assert "web server's threads" in job.device
    finally:
        m.shutdown()


# --- the queue ------------------------------------------------------------------------------------
def test_one_job_per_session(mgr):
    plan = plans.plan_train(quick_cfg())
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
    plan = plans.plan_train(quick_cfg())
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


def test_the_queue_reports_positions_and_start_estimates_and_starts_in_order(mgr):
    started = []

    def recorder(job):
        started.append(job.session_id)
        waiter(job)

    first = mgr.submit("s0", plans.plan_train(quick_cfg(max_seconds=40)), runner=recorder)
    assert wait_for(lambda: first.state == "running")
    waiting = [mgr.submit(f"s{i}", plans.plan_train(quick_cfg(max_seconds=10 * i)), runner=recorder)
               for i in range(1, 6)]
    assert [mgr.queue_position(j) for j in waiting] == [1, 2, 3, 4, 5]
    eta = [mgr.estimated_start(j) for j in waiting]
    prep = plans.PREP_SECONDS
    assert eta[0] == pytest.approx(40 + prep, abs=2)  # the running one's budget (no step yet)
    assert eta[1] == pytest.approx(eta[0] + 10 + prep) and eta[4] == pytest.approx(eta[3] + 40 + prep)
    assert mgr.estimated_start(first) is None
    for i in range(6):
        mgr.stop(f"s{i}")
        if i < 5:
            assert wait_for(lambda: waiting[i].state == "running"), i
            assert [mgr.queue_position(j) for j in waiting[i + 1:]] == list(range(1, 5 - i))
    assert started == [f"s{i}" for i in range(6)]


def test_watchdog_stops_a_job_whose_heartbeat_is_stale():
    m = jobs.JobManager(max_running=2, heartbeat_timeout=0.3, watchdog_every=0.05, alive=lambda sid: None,
                        purge_after=0.6)
    try:
        kept = m.submit("here", plans.plan_train(quick_cfg()), runner=waiter)
        gone = m.submit("gone", plans.plan_train(quick_cfg()), runner=waiter)
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
        job = m.submit("s", plans.plan_train(quick_cfg()), runner=waiter)
        time.sleep(0.5)
        assert job.state == "running"
    finally:
        m.shutdown()


# --- the class run --------------------------------------------------------------------------------
def live(job: runs.Job) -> None:
    """A fake run that reports a step every 10 ms until stopped."""
    from vit_core.training.loop import Step

    log = runs.RunLog("ViT", "vit")
    job.logs.append(log)
    job.current = 0
    n = 0
    while not job.stop_event.wait(0.01):
        n += 1
        log.steps.append(Step(n, 0.0, 1.0, 0.5, 1e-3, 100.0, n * 0.01, 10.0))
    log.reason = "stopped"


def test_a_class_run_is_watched_by_every_session_and_personal_runs_queue_behind_it(mgr):
    mine = mgr.submit("student-1", plans.plan_train(quick_cfg()), runner=waiter)  # already running
    assert wait_for(lambda: mine.state == "running")
    cls = mgr.submit("lecturer", plans.plan_train(quick_cfg()), runner=live, class_run=True)
    later = mgr.submit("student-2", plans.plan_train(quick_cfg()), runner=waiter)
    assert mgr.queue_position(cls) == 1 and mgr.queue_position(later) == 2  # the class run goes first
    assert mgr.shown("student-1") is mine  # training its own: sees its own
    assert mgr.shown("student-2") is cls and mgr.shown("nobody") is cls
    with pytest.raises(jobs.ClassRunBusy):
        mgr.submit("lecturer-2", plans.plan_train(quick_cfg()), runner=live, class_run=True)
    mgr.stop("student-1")
    assert wait_for(lambda: cls.state == "running" and len(cls.logs[0].steps) > 3)
    seen = mgr.shown("student-2").logs[0].steps  # a second session reads the same live events
    n = len(seen)
    assert wait_for(lambda: len(mgr.shown("student-2").logs[0].steps) > n)
    assert mgr.shown("student-1") is cls  # its own run ended: back to the class run
    mgr.stop("student-2")  # a student cannot stop the class run: only its own queued run
    assert wait_for(lambda: later.reason == "stopped") and cls.state == "running"
    mgr.stop("lecturer")
    assert wait_for(lambda: cls.state == "done")
    assert mgr.shown("student-2") is cls  # the finished class run stays on screen


def test_twenty_students_pressing_train_at_once_each_get_a_place(mgr):
    cls = mgr.submit("lecturer", plans.plan_train(quick_cfg()), runner=live, class_run=True)
    assert wait_for(lambda: cls.state == "running")
    errors, got = [], {}
    go = threading.Event()

    def student(i: int) -> None:
        go.wait()
        try:
            for _ in range(2):  # a double click
                try:
                    got[i] = mgr.submit(f"st{i}", plans.plan_train(quick_cfg()), runner=waiter)
                except jobs.JobBusy:
                    pass  # what the page does with a double click
        except Exception as err:  # anything else would be a traceback on a student's screen
            errors.append(err)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(10)
    assert not errors and len(got) == 20
    assert sorted(mgr.queue_position(j) for j in got.values()) == list(range(1, 21))
    assert all(mgr.shown(f"st{i}") is cls for i in range(20))
    assert all(mgr.estimated_start(j) is not None for j in got.values())


# --- the model store ------------------------------------------------------------------------------
def test_models_of_one_session_are_not_listed_for_another_but_class_models_are(tmp_path):
    store = ModelStore(tmp_path)
    now = time.time()
    fake_model(tmp_path / A / "mine.safetensors", 10, now)
    fake_model(tmp_path / B / "theirs.safetensors", 10, now)
    fake_model(tmp_path / CLASS / "lecture.safetensors", 10, now)
    fake_model(tmp_path / "old.safetensors", 10, now)  # saved before owners existed: shared
    names = lambda owner: {p.stem for p in store.listed(owner)}  # noqa: E731
    assert names(A) == {"mine", "lecture", "old"}
    assert names(B) == {"theirs", "lecture", "old"}
    assert names(None) == {"lecture", "old"}
    labels = dict(store.choices(A)).values()
    assert "Trained here: mine" in labels and "Class run: lecture" in labels
    state: dict = {}
    tok = owner_of(state)
    assert tok == owner_of(state) and len(tok) >= 16 and owner_of({}, create=False) is None
    with pytest.raises(ValueError):
        store.folder("../elsewhere")


def test_the_disk_bound_removes_the_oldest_models_first(tmp_path):
    store = ModelStore(tmp_path, max_mb=3000 / 2**20)  # 3000 bytes
    now = time.time()
    for i, owner in enumerate((A, B, CLASS, A)):  # 1000 + 2 bytes each, oldest first
        fake_model(tmp_path / owner / f"m{i}.safetensors", 1000, now - 100 + i)
    staged = store.staging_path("new")
    fake_model(staged, 1000, now)
    newest = store.adopt(staged, B)
    assert newest == tmp_path / B / "new.safetensors" and not staged.exists()
    left = sorted(p.stem for p in tmp_path.rglob("*.safetensors"))
    assert left == ["m3", "new"] and store.used_bytes() <= 3000
    assert not (tmp_path / CLASS).exists() or not any((tmp_path / CLASS).iterdir())
    big = ModelStore(tmp_path, max_mb=1e-6)
    assert big.enforce_bound(keep=newest) and newest.exists()  # never the one just saved


def test_a_worker_does_not_re_run_the_script_that_streamlit_installed_as_main(tmp_path, monkeypatch):
    """Under Streamlit, ``__main__`` is the page script running (the Train page warms the worker). A
    spawn child re-executes that file unless told otherwise: it imported the whole app and drew the
    page in bare mode (630-960 MB per worker)."""
    import multiprocessing as mp
    import sys
    import types

    from vit_core.training import worker

    marker = tmp_path / "ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('the page ran in the worker')\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", page)
    w = worker.Worker(mp.get_context("spawn"), threads=1)
    try:
        assert sys.modules["__main__"] is page  # the parent's own __main__ is back at once
        assert w.alive()
    finally:
        w.close(timeout=60)
    assert w.proc.exitcode == 0 and not marker.exists()
