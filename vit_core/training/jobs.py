"""Background training jobs for the live-training page: a queue, a class run, a watchdog. UI-free.

A Streamlit script reruns on every click and every second of the live view, so training cannot
run inside it. ``JobManager.submit`` queues a job; a small thread per job waits for its turn, then
hands the plan to a worker process (``vit_core.training.worker``: its own torch threads, never the
server's) and folds the messages that come back into the job, which the page reads
(``VIT_TRAIN_IN=thread`` trains in a thread of the server instead, sharing its torch threads and
never changing their number). The rules:

* one job per browser session (a second ``submit`` from the same session raises ``JobBusy``);
* at most ``max_running`` jobs train at once (``VIT_MAX_JOBS``, default half the cores, at least
  1); the others wait in a FIFO queue, each with its position and estimated start;
* a *class run* (one at a time, else ``ClassRunBusy``) goes to the front of the queue and is shown
  to every session on the page (``shown``) that is not training a run of its own;
* a watchdog stops the job of a gone session: its heartbeat (refreshed by the page every second)
  is older than ``heartbeat_timeout`` and the web server no longer lists the session as connected
  (a person reading another page keeps their job). A finished job of a gone session is dropped,
  with its logs and unkept weights. Anyone watching the class run keeps it alive;
* a run that ends by itself is saved into its plan's store; a stopped one only if the person
  asks (``keep``).
"""
from __future__ import annotations

import atexit
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from vit_core.io import loading
from vit_core.training import loop as T
from vit_core.training.plans import RunPlan, start_estimates
from vit_core.training.runs import (Job, RunFailed, RunLog, default_threads, failure_message, remaining_seconds,
                                    run_here)
from vit_core.training.store import CLASS
from vit_core.training.worker import Pool, WorkerDied

Runner = Callable[[Job], None]


class JobBusy(RuntimeError):
    """This session already has a job queued or running."""


class ClassRunBusy(JobBusy):
    """A class run is already queued or running on this server."""


@atexit.register
def _at_exit(timeout: float = 30.0) -> None:
    """Stop the jobs and their worker processes before the interpreter tears down."""
    if _MANAGER is not None:
        _MANAGER.shutdown(timeout)


def default_max_jobs() -> int:
    """``$VIT_MAX_JOBS``, else half the cores (at least 1): the other half serves the pages."""
    env = os.environ.get("VIT_MAX_JOBS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // 2)


def in_threads() -> bool:
    """``VIT_TRAIN_IN=thread``: train in a thread of the server process (sharing its torch threads,
    never changing their number) instead of the default worker process."""
    return os.environ.get("VIT_TRAIN_IN", "process").strip().lower() == "thread"


def device_label(device: str = "auto") -> str:
    """What a run will train on, in words, with the speed-ups that apply there."""
    dev = T.pick_device(device)
    if dev.type == "cuda":
        return f"{loading.device_label(dev)}: bf16 autocast, fused attention"
    if in_threads():
        return "CPU (the web server's threads): float32, fused attention"
    n = default_threads()
    return f"CPU ({n} thread{'s' if n != 1 else ''} in a training process): float32, fused attention"


# --- the manager ----------------------------------------------------------------------------------
class JobManager:
    def __init__(self, max_running: int | None = None, heartbeat_timeout: float = 30.0,
                 watchdog_every: float = 2.0, alive: Callable[[str], bool | None] = lambda sid: None,
                 purge_after: float = 600.0, threads: int | None = None):
        self.max_running = max_running or default_max_jobs()
        self.heartbeat_timeout = heartbeat_timeout
        self.watchdog_every = watchdog_every
        self.purge_after = purge_after
        self.alive = alive
        self.pool = Pool(threads)
        self.default_runner: Runner = run_here if in_threads() else self.pool.run
        self._jobs: dict[str, Job] = {}  # session id -> its latest job
        self._class: Job | None = None  # the latest class run
        self._queue: list[Job] = []
        self._running: list[Job] = []
        self._rate: float | None = None  # images/s of recent runs, for start estimates
        self._next_id = 1
        self._cond = threading.Condition()
        self._watchdog: threading.Thread | None = None
        self._closed = threading.Event()

    # -- the page's side --
    def submit(self, session_id: str, plan: RunPlan, runner: Runner | None = None, class_run: bool = False) -> Job:
        """Queue ``plan`` for this session (a class run goes to the front). Never blocks."""
        with self._cond:
            old = self._jobs.get(session_id)
            if old is not None and old.active:
                raise JobBusy("A run is already going in this session: stop it first, or wait for it to end.")
            if class_run and self._class is not None and self._class.active:
                raise ClassRunBusy("A class run is already going: everyone is watching it.")
            if old is not None:
                self._drop_pending(old)
            job = Job(self._next_id, session_id, plan, class_run=class_run)
            job.device = device_label(plan.legs[0].cfg.device) if plan.legs else ""
            self._next_id += 1
            self._jobs[session_id] = job
            if class_run:
                self._class = job
                self._queue.insert(0, job)
            else:
                self._queue.append(job)
            job.thread = threading.Thread(target=self._run, args=(job, runner or self.default_runner), daemon=True,
                                          name=f"vit-job-{job.id}")
            job.thread.start()
            self._cond.notify_all()
            self._ensure_watchdog()
        return job

    def get(self, session_id: str) -> Job | None:
        """This session's own latest job."""
        return self._jobs.get(session_id)

    def class_job(self) -> Job | None:
        return self._class

    def shown(self, session_id: str) -> Job | None:
        """The job this session's page shows: its own while training, the class run while that is
        going, else the one that started last (a run that never started shows only if alone)."""
        own, cls = self._jobs.get(session_id), self._class
        if own is not None and own.state == "running":
            return own
        if cls is not None and cls.active:
            return cls
        ran = [j for j in (own, cls) if j is not None and j.started is not None]
        return max(ran, key=lambda j: j.started) if ran else own or cls

    def heartbeat(self, session_id: str) -> None:
        """The page is open in this session (a watcher of the class run keeps it alive too)."""
        now = time.monotonic()
        for job in (self._jobs.get(session_id), self._class):
            if job is not None:
                job.heartbeat = now

    def stop(self, session_id: str, by: str = "user") -> Job | None:
        job = self._jobs.get(session_id)
        if job is not None and job.active:
            job.stopped_by = job.stopped_by or by
            job.stop_event.set()
            with self._cond:
                self._cond.notify_all()
        return job

    def keep(self, session_id: str) -> Path | None:
        """Save the stopped run's pending weights into its owner's models; the saved path."""
        job = self._jobs.get(session_id)
        with self._cond:
            if job is None or job.active or job.pending is None or job.plan.store is None:
                return job.saved if job is not None else None
            staged, job.pending = job.pending, None
        job.saved = job.plan.store.adopt(staged, job.plan.owner or CLASS)
        return job.saved

    def forget(self, session_id: str) -> None:
        """Drop a finished job (its logs, snapshots and unkept weights)."""
        with self._cond:
            job = self._jobs.get(session_id)
            if job is not None and not job.active:
                del self._jobs[session_id]
                self._drop_pending(job)  # only its session could keep it

    def clear_class(self) -> None:
        """Take an ended class run off every session's page."""
        with self._cond:
            if self._class is not None and not self._class.active:
                self._drop_pending(self._class)
                self._class = None

    def queue_position(self, job: Job) -> int:
        """0 when running or finished, else 1 for the next in line, 2 after that..."""
        with self._cond:
            return self._queue.index(job) + 1 if job in self._queue else 0

    def estimated_start(self, job: Job) -> float | None:
        """About how many seconds until ``job`` starts (None when it is not waiting)."""
        with self._cond:
            if job not in self._queue:
                return None
            starts = start_estimates([remaining_seconds(j, self._rate) for j in self._running],
                                     [q.plan for q in self._queue], self.max_running, self._rate)
            return starts[self._queue.index(job)]

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def running(self) -> int:
        return len(self._running)

    def warm(self) -> None:
        """Start a training process ahead of the first run (imports and Shapes templates take seconds)."""
        try:
            if self.default_runner == self.pool.run:
                self.pool.warm()
        except Exception:  # warming is an optimisation: a failure shows when a run starts
            traceback.print_exc()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop everything, worker processes included."""
        self._closed.set()
        for sid in list(self._jobs):
            self.stop(sid, by="shutdown")
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout)
        self.pool.shutdown()

    # -- the job's thread --
    def _drop_pending(self, job: Job) -> None:
        if job.pending is not None and job.plan.store is not None:
            job.plan.store.discard(job.pending)
        job.pending = None

    def _run(self, job: Job, runner: Runner) -> None:
        with self._cond:
            while not job.stop_event.is_set() and not (len(self._running) < self.max_running
                                                         and self._queue and self._queue[0] is job):
                self._cond.wait(0.5)
            self._queue.remove(job)
            if job.stop_event.is_set():
                job.state, job.finished = "done", time.time()
                job.logs.append(RunLog("—", "none", reason="stopped"))
                self._cond.notify_all()
                return
            self._running.append(job)
            job.state, job.started = "running", time.time()
        try:
            runner(job)
            job.state = "done"
        except (RunFailed, WorkerDied) as err:
            job.state, job.error = "error", str(err)
        except Exception as err:  # in-thread runners: shown on the page, the traceback in the server log
            traceback.print_exc()
            job.state, job.error = "error", failure_message(err, job.plan, job.current)
        finally:
            job.finished = time.time()
            job.message = ""
            rates = [lg.last.images_per_s for lg in job.logs if lg.last is not None and lg.model == "vit"]
            with self._cond:
                if rates:
                    self._rate = rates[-1] if self._rate is None else 0.5 * (self._rate + rates[-1])
                self._running.remove(job)
                self._cond.notify_all()

    # -- the watchdog --
    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or not self._watchdog.is_alive():
            self._watchdog = threading.Thread(target=self._watch, daemon=True, name="vit-job-watchdog")
            self._watchdog.start()

    def check(self) -> None:
        """One watchdog pass: stop the jobs of gone sessions, drop their finished jobs."""
        now = time.monotonic()
        for sid, job in list(self._jobs.items()):
            stale = now - job.heartbeat
            if stale <= self.heartbeat_timeout:
                continue
            alive = self.alive(sid) if self.alive is not None else None
            if alive:
                job.heartbeat = now  # connected, just on another page
                continue
            if job.active:
                self.stop(sid, by="session closed")
            elif stale > self.purge_after or alive is False:
                self.forget(sid)
        cls = self._class
        if cls is not None and not cls.active and now - cls.heartbeat > self.purge_after:
            self.clear_class()  # nobody has watched it for a while

    def _watch(self) -> None:
        while not self._closed.wait(self.watchdog_every):
            try:
                self.check()
            except Exception:
                traceback.print_exc()


_MANAGER: JobManager | None = None
_MANAGER_LOCK = threading.Lock()


def manager(alive: Callable[[str], bool | None] | None = None) -> JobManager:
    """The process-wide manager shared by every session.

    Args:
        alive: asks the web server whether a session still exists (True/False, None when it
            cannot say); the first call's value is kept. The app passes one, this library knows
            no web framework.
    """
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = JobManager(alive=alive) if alive else JobManager()
        return _MANAGER


__all__ = ["ClassRunBusy", "JobBusy", "JobManager", "Runner", "default_max_jobs", "device_label", "in_threads",
           "manager"]
