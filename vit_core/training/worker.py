"""Training in worker processes, so that a job never touches the server's threads. UI-free.

torch's thread count is process-wide: a training thread that set it would change every other
session's inference too. So each job trains in a worker process (multiprocessing "spawn": a
fresh interpreter, safe beside the server's threads) that sets its own thread count
(``VIT_TRAIN_THREADS``, default 1) and a lower priority (``VIT_TRAIN_NICE``, default 10: pages
first, training gets the idle time), and streams ``runs.run_legs``' small messages back over a
queue; the server folds them into the job with ``runs.apply``. Stop sets an event the worker's
loop checks every step; a worker that does not stop within ``STOP_GRACE_S`` is terminated.

Workers are kept between jobs (importing torch and preparing the Shapes renderer cost
seconds), one per running job at most. A worker that dies (killed for memory, crashed) is
replaced, and its job ends with an error that says so. A worker whose server is gone exits.
"""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import traceback
import types

from vit_core.training import runs
from vit_core.training.loop import pick_device

GPU_LOCK = threading.Lock()  # held while a run trains on the GPU: two runs never share its memory
STOP_GRACE_S = 20.0
# The worker's scheduling priority, below the server's (``$VIT_TRAIN_NICE``, 0 = the same).
NICE = int(_env) if (_env := os.environ.get("VIT_TRAIN_NICE", "10").strip()).isdigit() else 10
_END = "end"


def _main(tasks, events, stop, threads: int) -> None:
    """The worker process: its own thread count and priority, then one plan after another until None."""
    import torch

    torch.set_num_threads(threads)  # this process's own pool; the server's is untouched
    try:
        os.nice(NICE)  # pages first: the scheduler gives the server's threads the cores they ask for
    except OSError:
        pass
    parent = mp.parent_process()

    def orphan_watch() -> None:
        while parent is None or parent.is_alive():
            time.sleep(2.0)
        os._exit(0)

    threading.Thread(target=orphan_watch, daemon=True).start()
    try:
        runs.warm_shapes()
    except Exception:
        traceback.print_exc()
    while True:
        plan = tasks.get()
        if plan is None:
            return
        current = [-1]

        def emit(msg) -> None:
            if isinstance(msg, runs.LegStart):
                current[0] = msg.index
                torch.set_num_threads(plan.legs[msg.index].cfg.num_threads or threads)
            events.put(msg)

        try:
            runs.run_legs(plan, stop, emit)
        except BaseException as err:  # told to the person; the traceback goes to the server log
            traceback.print_exc()
            events.put(runs.Failed(runs.failure_message(err, plan, current[0])))
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            events.put(_END)


_START_LOCK = threading.Lock()


def _start_without_main(proc) -> None:
    """``proc.start()``, without the child re-running the parent's ``__main__``.

    A "spawn" child first re-executes the file of ``sys.modules["__main__"]`` (as ``__mp_main__``).
    Under Streamlit that is the page script running at that moment (Streamlit installs each script
    run as ``__main__``): the Train page, which warms the worker. The child then imported the whole
    app, drew the Train page in bare mode and analysed the gallery (measured: 630-960 MB and seconds
    of CPU per worker). ``_main`` needs nothing from ``__main__``, so the child is given an empty one
    for the instant the process is created; the parent's is put back at once.
    """
    with _START_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__ or __spec__: nothing to re-run
        try:
            proc.start()
        finally:
            if main is not None:
                sys.modules["__main__"] = main


class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a run."""


class Worker:
    """One training process and its queues."""

    def __init__(self, ctx, threads: int):
        self.tasks, self.events, self.stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.proc = ctx.Process(target=_main, args=(self.tasks, self.events, self.stop, threads),
                                name="vit-train-worker", daemon=False)
        _start_without_main(self.proc)

    def alive(self) -> bool:
        return self.proc.is_alive()

    def run(self, job: runs.Job) -> None:
        """Train ``job``'s plan in this process, applying its messages to ``job`` until it ends.

        Raises:
            runs.RunFailed: the run failed (the message says why, OOM included).
            WorkerDied: the process ended mid-run (then it is not reusable).
        """
        self.stop.clear()
        self.tasks.put(job.plan)
        failure, stop_at = None, None
        while True:
            if job.stop_event.is_set() and stop_at is None:
                self.stop.set()
                stop_at = time.monotonic()
            try:
                msg = self.events.get(timeout=0.2)
            except queue.Empty:
                if stop_at is not None and time.monotonic() - stop_at > STOP_GRACE_S:
                    self.kill()  # stuck (a download, a long compile): stopping wins
                    _mark_stopped(job)
                    return
                if not self.proc.is_alive():
                    code = self.proc.exitcode
                    why = " (killed: out of memory?)" if code in (-9, 137) else ""
                    raise WorkerDied(f"The training process ended unexpectedly, exit code {code}{why}.")
                continue
            if msg == _END:
                break
            try:
                runs.apply(job, msg)
            except runs.RunFailed as err:
                failure = err
        if failure is not None:
            raise failure

    def close(self, timeout: float = 2.0) -> None:
        if self.proc.is_alive():
            try:
                self.tasks.put(None)
            except (OSError, ValueError):
                pass
            self.proc.join(timeout)
        self.kill()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)


def _wait_for_gpu(job: runs.Job) -> bool:
    """Take GPU_LOCK; False (and the job marked stopped) when it was stopped meanwhile."""
    if GPU_LOCK.acquire(blocking=False):
        return True
    job.message = "Waiting for the GPU (another run is using it)…"
    while not GPU_LOCK.acquire(timeout=0.5):
        if job.stop_event.is_set():
            job.logs.append(runs.RunLog("—", "none", reason="stopped"))
            return False
    job.message = ""
    return True


def _mark_stopped(job: runs.Job) -> None:
    if job.logs and job.logs[-1].reason is None:
        job.logs[-1].reason = "stopped"
    job.message = ""


class Pool:
    """Worker processes for a JobManager: taken by a job when it starts, given back when it ends."""

    def __init__(self, threads: int | None = None):
        self.threads = threads or runs.default_threads()
        self._ctx = mp.get_context("spawn")
        self._idle: list[Worker] = []
        self._busy: list[Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def warm(self) -> None:
        """Start a worker now (in the background), so that the first run does not wait for it."""
        with self._lock:
            if not self._closed and not self._idle and not self._busy:
                self._idle.append(Worker(self._ctx, self.threads))

    def _take(self) -> Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("The training pool is shut down.")
            while self._idle:
                w = self._idle.pop()
                if w.alive():
                    self._busy.append(w)
                    return w
                w.kill()
            w = Worker(self._ctx, self.threads)
            self._busy.append(w)
            return w

    def _give(self, w: Worker, reusable: bool) -> None:
        with self._lock:
            self._busy.remove(w)
            if reusable and w.alive() and not self._closed:
                self._idle.append(w)
                return
        w.kill()

    def run(self, job: runs.Job) -> None:
        """The JobManager's default runner: train ``job`` in a worker process (after waiting for the
        GPU, when it trains on one)."""
        cuda = any(pick_device(leg.cfg.device).type == "cuda" for leg in job.plan.legs)
        if cuda and not _wait_for_gpu(job):
            return
        try:
            w = self._take()
            reusable = False
            try:
                w.run(job)
                reusable = True
            except runs.RunFailed:
                reusable = True
                raise
            finally:
                self._give(w, reusable)  # (a worker killed at a stop is not alive: replaced)
        finally:
            if cuda:
                GPU_LOCK.release()

    def processes(self) -> list:
        with self._lock:
            return [w.proc for w in self._idle + self._busy]

    def shutdown(self, timeout: float = 2.0) -> None:
        with self._lock:
            self._closed = True
            workers, self._idle = self._idle + self._busy, []
        for w in workers:
            w.close(timeout)


__all__ = ["GPU_LOCK", "Pool", "STOP_GRACE_S", "Worker", "WorkerDied"]
