"""What a job records, and how its legs run: messages out of the trainer, logs in the server. UI-free.

A job (``vit_core.training.jobs`` queues and watches them) trains the legs of a
``plans.RunPlan`` in turn. :func:`run_legs` runs them wherever training happens (a worker
process, see ``vit_core.training.worker``, or a thread) and reports through ``emit`` in small
picklable messages: the trainer's Step, Eval and Snapshot events (floats and small numpy arrays)
plus LegStart, Note, LegReady, LegEnd, Staged and Failed. :func:`apply` folds them into the
job's ``RunLog``-s in the server, whose lists only grow, so the page can draw them while
training goes on. A leg that ran to its end is saved into the model store at once; a leg the
person stopped leaves its weights *pending* until they ask to keep them (``JobManager.keep``).
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vit_core.data.source import DataSource
from vit_core.model import count_params
from vit_core.training import loop as T
from vit_core.training import store as S
from vit_core.training.plans import RunPlan, leg_seconds
from vit_core.training.sources import build_source

ACTIVE = ("queued", "running")
MAX_SNAPSHOTS = 80  # per leg; older ones are thinned out (every other kept) beyond this


def default_threads() -> int:
    """CPU threads of a training process: ``$VIT_TRAIN_THREADS``, else 1.

    One thread beside the web server: on a small machine the server's inference keeps the other
    cores, and a toy ViT's small ops gain little from more (two contended cores mostly spend
    their time waking each other up). More jobs, not more threads, is how a big server scales.
    """
    env = os.environ.get("VIT_TRAIN_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else 1


# --- messages from a run ------------------------------------------------------------------------
@dataclass
class LegStart:
    index: int
    name: str
    model: str


@dataclass
class Note:
    message: str  # what is happening, in words ("" when nothing worth saying)
    progress: float | None = None


@dataclass
class LegReady:
    params: int


@dataclass
class LegEnd:
    reason: str
    val_acc: float
    seconds: float
    steps: int


@dataclass
class Staged:
    path: Path  # the leg's saved weights, in the store's staging folder


@dataclass
class Failed:
    message: str  # for people


class RunFailed(RuntimeError):
    """A run ended with an error; the message is meant for the person."""


# --- what a job records ---------------------------------------------------------------------------
@dataclass
class RunLog:
    """Everything the page draws for one leg. Lists only grow (safe to read while training)."""

    name: str
    model: str
    params: int = 0
    steps: list[T.Step] = field(default_factory=list)
    evals: list[T.Eval] = field(default_factory=list)
    snapshots: list[T.Snapshot] = field(default_factory=list)
    reason: str | None = None  # the trainer's Done.reason once the leg has ended
    val_acc: float = float("nan")
    seconds: float = 0.0

    @property
    def last(self) -> T.Step | None:
        return self.steps[-1] if self.steps else None


@dataclass
class Job:
    id: int
    session_id: str
    plan: RunPlan
    class_run: bool = False  # the lecturer's run, watched by every session
    created: float = field(default_factory=time.time)
    state: str = "queued"  # queued, running, done, error
    heartbeat: float = field(default_factory=time.monotonic)
    stop_event: threading.Event = field(default_factory=threading.Event)
    stopped_by: str | None = None  # "user", "session closed" or "shutdown"
    logs: list[RunLog] = field(default_factory=list)
    current: int = -1  # index of the leg training now
    message: str = ""  # what is happening, in words (preparing data, downloading...)
    progress: float | None = None  # of that, when it can be measured
    error: str | None = None
    saved: Path | None = None  # the kept model
    pending: Path | None = None  # a stopped leg's weights, kept only if the person asks
    device: str = ""
    started: float | None = None
    finished: float | None = None
    thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def reason(self) -> str | None:
        """How the job ended, for people."""
        if self.state == "error":
            return self.error
        if not self.logs or self.active:
            return None
        last = self.logs[-1].reason or ""
        if self.stopped_by == "session closed":
            return "stopped: the browser tab was closed"
        return last

    def log(self, name: str) -> RunLog | None:
        return next((lg for lg in self.logs if lg.name == name), None)


def remaining_seconds(job: Job, images_per_s: float | None = None) -> float:
    """About how long a running job still trains: the live ETA of its leg, then its later legs."""
    legs, cur = job.plan.legs, max(job.current, 0)
    last = job.logs[cur].last if cur < len(job.logs) else None
    now = last.eta_s if last is not None and last.eta_s is not None else leg_seconds(legs[cur].cfg, images_per_s)
    return now + sum(leg_seconds(leg.cfg, images_per_s) for leg in legs[cur + 1:])


# --- running the legs (in the training process) ---------------------------------------------------
_WARM_LOCK = threading.Lock()
_WARMED = threading.Event()


def warm_shapes() -> None:
    """Rasterise and cache the Shapes class templates (seconds on a slow CPU, once per process)."""
    with _WARM_LOCK:  # a run that starts meanwhile waits here instead of doing the same work twice
        if not _WARMED.is_set():
            from vit_core.data import shapes

            shapes.generate(2, seed=0, size=32)
            _WARMED.set()


def _source(plan: RunPlan, cfg, cache: dict, emit: Callable) -> DataSource:
    key = (cfg.dataset, cfg.img_size, cfg.train_size, cfg.val_size, cfg.seed, cfg.val_seed, cfg.batch_size,
           repr(cfg.data_options))
    if key not in cache:
        cache[key] = build_source(cfg, plan.data, lambda frac, msg: emit(Note(msg, frac)))
    return cache[key]


def run_legs(plan: RunPlan, stop, emit: Callable[[object], None]) -> None:
    """Train each leg of ``plan`` in turn, reporting through ``emit``; ``stop.is_set()`` ends early.

    A leg with ``save`` that trained at least one step without diverging is saved into the
    plan's store's staging folder (``Staged``); the server decides whether it is kept.
    """
    cache: dict = {}
    for i, leg in enumerate(plan.legs):
        if stop.is_set():
            break
        emit(LegStart(i, leg.name, leg.model))
        if leg.cfg.dataset == "shapes" and plan.data is None and not _WARMED.is_set():
            emit(Note("Preparing the Shapes renderer (once per training process)…"))
            warm_shapes()
        n = f"{leg.cfg.train_size:,} training + " if leg.cfg.train_size else ""
        emit(Note(f"Preparing the data for {leg.name} ({n}{leg.cfg.val_size:,} validation images)…"))
        data = _source(plan, leg.cfg, cache, emit)
        cfg = T.with_classes(leg.cfg, len(data.classes))
        model = T.build_model(cfg, leg.model)
        emit(LegReady(count_params(model)))
        emit(Note(f"Training {leg.name}"))
        done = None
        for ev in T.fit(model, cfg, stop, data, plan.compile):
            if isinstance(ev, T.Done):
                done = ev
            else:
                emit(ev)
        emit(LegEnd(done.reason, done.val_acc, done.seconds, done.steps))
        diverged = done.reason.startswith("diverged")
        if leg.save and plan.store is not None and done.steps > 0 and not diverged:
            emit(Note("Saving the model…"))
            name = f"{plan.save_name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
            emit(Staged(S.save_run(plan.store.staging_path(name), done.model, leg.cfg, data.classes, done,
                                   dataset=plan.data_label, **plan.extra_meta)))
        del done, model
        if diverged:
            break
    emit(Note(""))


def failure_message(err: BaseException, plan: RunPlan, current: int) -> str:
    """What to tell the person about an exception out of a run."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        leg = plan.legs[current] if 0 <= current < len(plan.legs) else (plan.legs[0] if plan.legs else None)
        return oom_message(leg.cfg.batch_size if leg else None)
    return f"The run failed: {type(err).__name__}: {err}"


def oom_message(cfg_batch: int | None) -> str:
    smaller = max(1, (cfg_batch or 2) // 2)
    return (f"The GPU ran out of memory at batch size {cfg_batch}. Try a smaller batch (e.g. {smaller}), "
            "a smaller model or a larger patch size (fewer tokens).")


# --- folding messages into the job (in the server) ------------------------------------------------
def _thin(snaps: list) -> None:
    if len(snaps) > MAX_SNAPSHOTS:
        del snaps[1:-1:2]  # keep the first and the newest


def apply(job: Job, msg) -> None:
    """Record one message of ``run_legs`` in ``job``. Raises RunFailed for a Failed message."""
    log = job.logs[job.current] if 0 <= job.current < len(job.logs) else None
    if isinstance(msg, LegStart):
        job.logs.append(RunLog(msg.name, msg.model))
        job.current = msg.index
    elif isinstance(msg, Note):
        job.message, job.progress = msg.message, msg.progress
    elif isinstance(msg, T.Step):
        log.steps.append(msg)
    elif isinstance(msg, T.Eval):
        log.evals.append(msg)
    elif isinstance(msg, T.Snapshot):
        log.snapshots.append(msg)
        _thin(log.snapshots)
    elif isinstance(msg, LegReady):
        log.params = msg.params
    elif isinstance(msg, LegEnd):
        log.reason, log.val_acc, log.seconds = msg.reason, msg.val_acc, msg.seconds
    elif isinstance(msg, Staged):
        _settle(job, log, Path(msg.path))
    elif isinstance(msg, Failed):
        raise RunFailed(msg.message)


def _settle(job: Job, log: RunLog | None, staged: Path) -> None:
    """A leg's staged weights: kept at once when it ran to its end, else pending or dropped."""
    plan = job.plan
    if plan.store is None:
        return
    if job.stopped_by in ("session closed", "shutdown"):
        plan.store.discard(staged)
    elif log is not None and log.reason == "stopped":
        plan.store.discard(job.pending)
        job.pending = staged  # the person decides: JobManager.keep
    else:
        job.saved = plan.store.adopt(staged, plan.owner or S.CLASS)


def run_here(job: Job) -> None:
    """A runner that trains in the calling thread (no process of its own; no thread-count change)."""
    def emit(msg) -> None:
        apply(job, msg)

    run_legs(job.plan, job.stop_event, emit)


__all__ = ["ACTIVE", "Failed", "Job", "LegEnd", "LegReady", "LegStart", "Note", "RunFailed", "RunLog", "Staged",
           "apply", "default_threads", "failure_message", "oom_message", "remaining_seconds", "run_here", "run_legs",
           "warm_shapes"]
