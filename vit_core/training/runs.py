"""What a background job runs and records: plans of training legs, their logs, the default runner. UI-free.

A job (``vit_core.training.jobs`` queues and watches them) is a sequence of *legs* (ViT, then CNN, ...)
sharing one data source. ``run_plan`` trains the legs in turn and appends each trainer event to
the leg's ``RunLog``, whose lists only grow, so the page can draw them while training goes on;
the trainer's own ``Done.reason`` says how each leg ended (``finished``, ``time budget``,
``stopped``, ``diverged: ...``). A process-wide ``GPU_LOCK`` is held while a leg uses CUDA, so
two runs never share the GPU's memory.
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vit_core.training import loop as T
from vit_core.data.source import DATA_SOURCES, DataSource
from vit_core.model import count_params
from vit_core.training.config import TrainConfig

GPU_LOCK = threading.Lock()
ACTIVE = ("queued", "running")
MAX_SNAPSHOTS = 80  # per leg; older ones are thinned out (every other kept) beyond this


def default_threads() -> int:
    """CPU threads for training: ``$VIT_TRAIN_THREADS``, else every core on a small machine and one
    left for the web server on larger ones. (On a machine crowded by other work, 1 can be faster:
    small ops on two contended cores spend their time waking each other up.)"""
    env = os.environ.get("VIT_TRAIN_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    n = os.cpu_count() or 1
    return n if n <= 2 else min(16, n - 1)


_WARM_LOCK = threading.Lock()
_WARMED = threading.Event()


def _warm_shapes() -> None:
    with _WARM_LOCK:  # a run that starts meanwhile waits here instead of doing the same work twice
        if not _WARMED.is_set():
            from vit_core.data import shapes

            shapes.generate(2, seed=0, size=32)  # rasterises and caches the class templates
            _WARMED.set()


_WARM_THREAD: threading.Thread | None = None


def warm_up() -> None:
    """Prepare the Shapes renderer in the background (seconds on a slow CPU, once per process)."""
    global _WARM_THREAD
    if not _WARMED.is_set() and (_WARM_THREAD is None or not _WARM_THREAD.is_alive()):
        _WARM_THREAD = threading.Thread(target=_warm_shapes, daemon=True, name="vit-shapes-warm-up")
        _WARM_THREAD.start()


@atexit.register
def _join_warm_up(timeout: float = 30.0) -> None:
    """Let the warm-up thread leave torch before the interpreter tears down (else: abort)."""
    if _WARM_THREAD is not None:
        _WARM_THREAD.join(timeout)


# --- what a job runs ------------------------------------------------------------------------------
@dataclass
class Leg:
    """One training run inside a job."""

    name: str  # shown in legends, e.g. "ViT", "CNN", "ViT · 10% data"
    model: str  # "vit" or "cnn"
    cfg: TrainConfig
    save: bool = False  # save the trained ViT to the job's save_dir


@dataclass
class RunPlan:
    kind: str  # "train", "compare" or "data-size"
    legs: list[Leg]
    data_label: str = "Shapes"
    # (cfg, progress) -> DataSource, progress(fraction, message) reporting e.g. a download;
    # None uses the trainer's registry (vit_core.data.source.DATA_SOURCES[cfg.dataset])
    data: Callable[[TrainConfig, Callable[[float, str], None]], DataSource] | None = None
    save_dir: Path | None = None
    save_name: str = "vit"
    extra_meta: dict = field(default_factory=dict)
    compile: bool = False  # torch.compile the training forward pass (CUDA; the first steps compile)


def _with(cfg: TrainConfig, **kw) -> TrainConfig:
    return dataclasses.replace(cfg, vit=cfg.vit, **kw)


def _split_budget(cfg: TrainConfig, parts: int) -> TrainConfig:
    return _with(cfg, max_seconds=cfg.max_seconds / parts if cfg.max_seconds else None)


def plan_train(cfg: TrainConfig, **kw) -> RunPlan:
    return RunPlan("train", [Leg("ViT", "vit", cfg, save=True)], **kw)


def _fair(cfg: TrainConfig) -> TrainConfig:
    """No ViT-only extras (token labelling uses object masks the CNN never sees) in a comparison."""
    return _with(cfg, token_label_weight=0.0) if getattr(cfg, "token_label_weight", 0) else cfg


def plan_compare(cfg: TrainConfig, **kw) -> RunPlan:
    """ViT then a CNN of similar parameter count, same data and schedule, the time budget split in two."""
    c = _split_budget(_fair(cfg), 2)
    return RunPlan("compare", [Leg("ViT", "vit", c, save=True), Leg("CNN", "cnn", c)], **kw)


def plan_data_size(cfg: TrainConfig, full_size: int, fraction: float = 0.1, **kw) -> RunPlan:
    """ViT and CNN on ``fraction`` of a fixed training set, then on all of it (budget split in four)."""
    small = max(1, int(round(full_size * fraction)))
    c = _split_budget(_fair(cfg), 4)
    legs = [Leg(f"{m} · {p}", m.lower(), _with(c, train_size=n))
            for n, p in ((small, f"{fraction:.0%} data"), (full_size, "100% data")) for m in ("ViT", "CNN")]
    return RunPlan("data-size", legs, **kw)


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
    created: float = field(default_factory=time.time)
    state: str = "queued"  # queued, running, done, error
    heartbeat: float = field(default_factory=time.monotonic)
    stop_event: threading.Event = field(default_factory=threading.Event)
    stopped_by: str | None = None  # "user" or "session closed"
    logs: list[RunLog] = field(default_factory=list)
    current: int = -1  # index of the leg training now
    message: str = ""  # what is happening, in words (preparing data, downloading...)
    progress: float | None = None  # of that, when it can be measured
    error: str | None = None
    saved: Path | None = None
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


# --- running a plan -------------------------------------------------------------------------------
def _source(job: Job, cfg: TrainConfig, cache: dict) -> DataSource:
    key = (cfg.dataset, cfg.img_size, cfg.train_size, cfg.val_size, cfg.seed, cfg.val_seed, cfg.batch_size,
           repr(cfg.data_options))
    if key not in cache:
        def progress(frac: float, msg: str) -> None:
            job.message, job.progress = msg, frac

        plan = job.plan
        cache[key] = plan.data(cfg, progress) if plan.data is not None else DATA_SOURCES[cfg.dataset](cfg)
        job.progress = None
    return cache[key]


def _thin(snaps: list) -> None:
    if len(snaps) > MAX_SNAPSHOTS:
        del snaps[1:-1:2]  # keep the first and the newest


def _leg_events(leg: Leg, cfg: TrainConfig, stop: threading.Event, data: DataSource, compile: bool = False):
    if leg.model == "vit":
        return None, T.train(cfg, stop, data, compile_model=compile)
    from vit_core import cnn

    model = cnn.make_cnn(_vit_params(cfg, len(data.classes)), len(data.classes), cfg.vit.in_chans,
                         cfg.img_size, seed=cfg.seed)
    return count_params(model), cnn.train_module(model, cfg, stop, data, compile_model=compile)


def _vit_params(cfg: TrainConfig, k: int) -> int:
    from vit_core.model import VisionTransformer

    with torch.device("meta"):
        return count_params(VisionTransformer(dataclasses.replace(cfg.vit, num_classes=k)))


def run_plan(job: Job) -> None:
    """The default runner: train each leg in turn, record its events, save what should be saved."""
    plan, cache = job.plan, {}
    for i, leg in enumerate(plan.legs):
        if job.stop_event.is_set():
            break
        cfg = _with(leg.cfg, num_threads=leg.cfg.num_threads or default_threads())
        log = RunLog(leg.name, leg.model)
        job.logs.append(log)
        job.current = i
        if cfg.dataset == "shapes" and plan.data is None and not _WARMED.is_set():
            job.message = "Preparing the Shapes renderer (once after a server start)…"
            _warm_shapes()
        n = f"{cfg.train_size:,} training + " if cfg.train_size else ""
        job.message = f"Preparing the data for {leg.name} ({n}{cfg.val_size:,} validation images)…"
        data = _source(job, cfg, cache)
        cuda = T.pick_device(cfg.device).type == "cuda"
        if cuda and not GPU_LOCK.acquire(blocking=False):
            job.message = "Waiting for the GPU (another run is using it)…"
            while not GPU_LOCK.acquire(timeout=0.5):
                if job.stop_event.is_set():
                    log.reason = "stopped"
                    return
        try:
            params, events = _leg_events(leg, cfg, job.stop_event, data, plan.compile)
            log.params = params or _vit_params(cfg, len(data.classes))
            job.message = f"Training {leg.name}"
            done = None
            for ev in events:
                if isinstance(ev, T.Step):
                    log.steps.append(ev)
                elif isinstance(ev, T.Eval):
                    log.evals.append(ev)
                elif isinstance(ev, T.Snapshot):
                    log.snapshots.append(ev)
                    _thin(log.snapshots)
                elif isinstance(ev, T.Done):
                    done = ev
            log.reason, log.val_acc, log.seconds = done.reason, done.val_acc, done.seconds
            if (leg.save and plan.save_dir is not None and done.steps > 0
                    and not done.reason.startswith("diverged") and job.stopped_by != "session closed"):
                job.message = "Saving the model…"
                job.saved = save_trained(plan, leg, cfg, done, data.classes)
            del done, events
        finally:
            if cuda:
                torch.cuda.empty_cache()
                GPU_LOCK.release()
        if log.reason and log.reason.startswith("diverged"):
            break
    job.message = ""


def save_trained(plan: RunPlan, leg: Leg, cfg: TrainConfig, done: T.Done, classes: list[str]) -> Path:
    from vit_core.io import loading

    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(plan.save_dir) / f"{plan.save_name}-{stamp}.safetensors"
    meta = {"train_config": cfg.to_dict(), "dataset": plan.data_label, "val_acc": done.val_acc,
            "steps": done.steps, "seconds": round(done.seconds, 1), "reason": done.reason,
            "images_seen": done.steps * cfg.batch_size, "torch": torch.__version__, **plan.extra_meta}
    return loading.save_model(path, done.model.cpu(), list(classes), T.data_config(cfg), meta)


def oom_message(cfg_batch: int | None) -> str:
    smaller = max(1, (cfg_batch or 2) // 2)
    return (f"The GPU ran out of memory at batch size {cfg_batch}. Try a smaller batch (e.g. {smaller}), "
            "a smaller model or a larger patch size (fewer tokens).")


__all__ = ["ACTIVE", "GPU_LOCK", "Job", "Leg", "RunLog", "RunPlan", "default_threads", "oom_message", "plan_compare",
           "plan_data_size", "plan_train", "run_plan", "save_trained", "warm_up"]
