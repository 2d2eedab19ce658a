"""Background training jobs for the live-training page: one thread per job, UI-free.

A Streamlit script reruns on every click and every second of the live view, so training cannot
run inside it. ``JobManager.submit`` starts a thread that outlives reruns and page switches; the
page only reads the job's logs. The rules:

* one job per browser session (a second ``submit`` from the same session raises ``JobBusy``);
* at most ``max_running`` jobs train at once (1 on a CPU, where two runs would only halve each
  other's speed); the others wait in a FIFO queue whose position the page shows;
* a process-wide ``GPU_LOCK`` is held while a run uses CUDA, so two runs never share the GPU's memory;
* a watchdog stops the job of a session that is gone: its heartbeat (refreshed by the page every
  second) is older than ``heartbeat_timeout`` and Streamlit no longer lists the session as
  connected (so a person reading another page keeps their job). A finished job of a gone session
  is dropped, with its logs and snapshots;
* a job is a sequence of *legs* (ViT, then CNN, ...) sharing one data source; the trainer's own
  ``Done.reason`` says how each ended (``finished``, ``time budget``, ``stopped``, ``diverged: ...``).
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vit_core import train as T
from vit_core.model import count_params
from vit_core.presets import TrainConfig

GPU_LOCK = threading.Lock()
ACTIVE = ("queued", "running")
MAX_SNAPSHOTS = 80  # per leg; older ones are thinned out (every other kept) beyond this


class JobBusy(RuntimeError):
    """This session already has a job queued or running."""


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
            from vit_core.datasets import shapes

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
def _at_exit(timeout: float = 30.0) -> None:
    """Let background threads leave torch before the interpreter tears down (else: abort)."""
    if _MANAGER is not None:
        _MANAGER.shutdown(timeout)
    if _WARM_THREAD is not None:
        _WARM_THREAD.join(timeout)


def device_label(device: str = "auto") -> str:
    """What the run will train on, in words, with the speed-ups that apply there."""
    dev = T.pick_device(device)
    if dev.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(dev)} (bf16 autocast, fused attention)"
    return f"CPU: {default_threads()} thread(s), float32, fused attention"


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
    # None uses the trainer's registry (vit_core.train.DATA_SOURCES[cfg.dataset])
    data: Callable[[TrainConfig, Callable[[float, str], None]], T.DataSource] | None = None
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


Runner = Callable[[Job], None]


# --- running a plan -------------------------------------------------------------------------------
def _source(job: Job, cfg: TrainConfig, cache: dict) -> T.DataSource:
    key = (cfg.dataset, cfg.img_size, cfg.train_size, cfg.val_size, cfg.seed, cfg.val_seed, cfg.batch_size,
           repr(cfg.data_options))
    if key not in cache:
        def progress(frac: float, msg: str) -> None:
            job.message, job.progress = msg, frac

        plan = job.plan
        cache[key] = plan.data(cfg, progress) if plan.data is not None else T.DATA_SOURCES[cfg.dataset](cfg)
        job.progress = None
    return cache[key]


def _thin(snaps: list) -> None:
    if len(snaps) > MAX_SNAPSHOTS:
        del snaps[1:-1:2]  # keep the first and the newest


def _leg_events(leg: Leg, cfg: TrainConfig, stop: threading.Event, data: T.DataSource, compile: bool = False):
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
    from vit_core import loading

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


__all__ = ["warm_up", "GPU_LOCK", "Job", "JobBusy", "JobManager", "Leg", "RunLog", "RunPlan", "default_threads",
           "device_label", "manager", "plan_compare", "plan_data_size", "plan_train", "run_plan"]
