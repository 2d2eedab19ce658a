"""Background training jobs for the live-training page: one thread per job, UI-free.

A Streamlit script reruns on every click and every second of the live view, so training cannot
run inside it. ``JobManager.submit`` starts a thread that outlives reruns and page switches; the
page only reads the job's logs. The rules:

* one job per browser session (a second ``submit`` from the same session raises ``JobBusy``);
* at most ``max_running`` jobs train at once (1 on a CPU, where two runs would only halve each
  other's speed); the others wait in a FIFO queue whose position the page shows;
* a process-wide ``runs.GPU_LOCK`` is held while a run uses CUDA, so two runs never share the GPU's memory;
* a watchdog stops the job of a session that is gone: its heartbeat (refreshed by the page every
  second) is older than ``heartbeat_timeout`` and Streamlit no longer lists the session as
  connected (so a person reading another page keeps their job). A finished job of a gone session
  is dropped, with its logs and snapshots;
* a job is a sequence of *legs* (ViT, then CNN, ...) sharing one data source; what a job runs and
  records, and the default runner, are in ``vit_core.training.runs``.
"""
from __future__ import annotations

import atexit
import os
import threading
import time
import traceback
from collections.abc import Callable

import torch

from vit_core.io import loading
from vit_core.training import loop as T
from vit_core.training.runs import Job, RunLog, RunPlan, default_threads, oom_message, run_plan

Runner = Callable[[Job], None]


class JobBusy(RuntimeError):
    """This session already has a job queued or running."""


# The Shapes warm-up thread is joined by runs.py's own exit hook: registered earlier (imported
# above), it runs after this one.
@atexit.register
def _at_exit(timeout: float = 30.0) -> None:
    """Let background threads leave torch before the interpreter tears down (else: abort)."""
    if _MANAGER is not None:
        _MANAGER.shutdown(timeout)


def device_label(device: str = "auto") -> str:
    """What the run will train on, in words, with the speed-ups that apply there."""
    dev = T.pick_device(device)
    if dev.type == "cuda":
        return f"{loading.device_label(dev)}: bf16 autocast, fused attention"
    return f"CPU ({default_threads()} threads): float32, fused attention"


# --- the manager ----------------------------------------------------------------------------------
class JobManager:
    def __init__(self, max_running: int | None = None, heartbeat_timeout: float = 30.0,
                 watchdog_every: float = 2.0, alive: Callable[[str], bool | None] = lambda sid: None,
                 purge_after: float = 600.0):
        env = os.environ.get("VIT_MAX_JOBS")
        self.max_running = max_running or (int(env) if env else 1)
        self.heartbeat_timeout = heartbeat_timeout
        self.watchdog_every = watchdog_every
        self.purge_after = purge_after
        self.alive = alive
        self._jobs: dict[str, Job] = {}  # session id -> its latest job
        self._queue: list[Job] = []
        self._running = 0
        self._next_id = 1
        self._cond = threading.Condition()
        self._watchdog: threading.Thread | None = None
        self._closed = threading.Event()

    # -- the page's side --
    def submit(self, session_id: str, plan: RunPlan, runner: Runner = run_plan) -> Job:
        with self._cond:
            old = self._jobs.get(session_id)
            if old is not None and old.active:
                raise JobBusy("A run is already going in this session: stop it first, or wait for it to end.")
            job = Job(self._next_id, session_id, plan)
            job.device = device_label(plan.legs[0].cfg.device) if plan.legs else ""
            self._next_id += 1
            self._jobs[session_id] = job
            self._queue.append(job)
            job.thread = threading.Thread(target=self._run, args=(job, runner), daemon=True,
                                          name=f"vit-job-{job.id}")
            job.thread.start()
            self._ensure_watchdog()
        return job

    def get(self, session_id: str) -> Job | None:
        return self._jobs.get(session_id)

    def heartbeat(self, session_id: str) -> None:
        job = self._jobs.get(session_id)
        if job is not None:
            job.heartbeat = time.monotonic()

    def stop(self, session_id: str, by: str = "user") -> Job | None:
        job = self._jobs.get(session_id)
        if job is not None and job.active:
            job.stopped_by = job.stopped_by or by
            job.stop_event.set()
            with self._cond:
                self._cond.notify_all()
        return job

    def forget(self, session_id: str) -> None:
        """Drop a finished job (its logs and snapshots)."""
        with self._cond:
            job = self._jobs.get(session_id)
            if job is not None and not job.active:
                del self._jobs[session_id]

    def queue_position(self, job: Job) -> int:
        """0 when running or finished, else 1 for the next in line, 2 after that..."""
        with self._cond:
            return self._queue.index(job) + 1 if job in self._queue else 0

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def running(self) -> int:
        return self._running

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop everything (tests)."""
        self._closed.set()
        for sid in list(self._jobs):
            self.stop(sid, by="shutdown")
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout)

    # -- the job thread --
    def _run(self, job: Job, runner: Runner) -> None:
        with self._cond:
            while not job.stop_event.is_set() and not (self._running < self.max_running
                                                         and self._queue and self._queue[0] is job):
                self._cond.wait(0.5)
            self._queue.remove(job)
            if job.stop_event.is_set():
                job.state, job.finished = "done", time.time()
                job.logs.append(RunLog("—", "none", reason="stopped"))
                self._cond.notify_all()
                return
            self._running += 1
            job.state, job.started = "running", time.time()
        try:
            runner(job)
            job.state = "done"
        except torch.cuda.OutOfMemoryError:
            job.state, job.error = "error", oom_message(job.plan.legs[job.current].cfg.batch_size)
        except Exception as err:  # shown on the page; the traceback goes to the server log
            traceback.print_exc()
            job.state, job.error = "error", f"The run failed: {type(err).__name__}: {err}"
        finally:
            job.finished = time.time()
            job.message = ""
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            with self._cond:
                self._running -= 1
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


__all__ = ["JobBusy", "JobManager", "Runner", "device_label", "manager"]
