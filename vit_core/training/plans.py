"""What a job runs: plans of training legs, built from what the training page's form chose. UI-free.

A :class:`RunPlan` is a sequence of *legs* (ViT, then CNN, ...) sharing one data source;
``plan_train``, ``plan_compare`` and ``plan_data_size`` are the page's three experiments.
:class:`Choices` is the form in its own terms (data, layout, budget...); :func:`config_for` turns
it into a ``TrainConfig`` and :func:`plan_for` into a plan, so the page itself computes nothing.
A plan is plain values (picklable): it crosses into the worker process that trains it.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import dataclass, field

from vit_core.model import ViTConfig
from vit_core.training.config import LAYOUTS, PRESETS, TrainConfig, get_preset, layout_preset
from vit_core.training.sources import DataRecipe, tensors_recipe, vision_recipe
from vit_core.training.store import ModelStore

ZIP_VAL_FRACTION = 0.2  # of each class of an uploaded zip, held out for validation
PREP_SECONDS = 5.0  # per leg, in start-time estimates: building the model and the data
DEFAULT_IMAGES_PER_S = 1000.0  # in estimates of step budgets, until a run on this server measured it


@dataclass
class Leg:
    """One training run inside a job."""

    name: str  # shown in legends, e.g. "ViT", "CNN", "ViT · 10% data"
    model: str  # "vit" or "cnn"
    cfg: TrainConfig
    save: bool = False  # offer the trained ViT for keeping (saved at once when it ran to the end)


@dataclass
class RunPlan:
    kind: str  # "train", "compare" or "data-size"
    legs: list[Leg]
    data_label: str = "Shapes"
    data: DataRecipe | None = None  # None: the trainer's registry, sources.DATA_SOURCES[cfg.dataset]
    store: ModelStore | None = None  # where a kept model goes; None: nothing is saved
    owner: str | None = None  # whose folder in the store (a token, or store.CLASS)
    save_name: str = "vit"
    extra_meta: dict = field(default_factory=dict)
    compile: bool = False  # torch.compile the training forward pass (CUDA; the first steps compile)


def _split_budget(cfg: TrainConfig, parts: int) -> TrainConfig:
    return dataclasses.replace(cfg, max_seconds=cfg.max_seconds / parts if cfg.max_seconds else None)


def _fair(cfg: TrainConfig) -> TrainConfig:
    """No ViT-only extras (token labelling uses object masks the CNN never sees) in a comparison."""
    return dataclasses.replace(cfg, token_label_weight=0.0) if cfg.token_label_weight else cfg


def plan_train(cfg: TrainConfig, **kw) -> RunPlan:
    return RunPlan("train", [Leg("ViT", "vit", cfg, save=True)], **kw)


def plan_compare(cfg: TrainConfig, **kw) -> RunPlan:
    """ViT then a CNN of similar parameter count, same data and schedule, the time budget split in two."""
    c = _split_budget(_fair(cfg), 2)
    return RunPlan("compare", [Leg("ViT", "vit", c, save=True), Leg("CNN", "cnn", c)], **kw)


def plan_data_size(cfg: TrainConfig, full_size: int, fraction: float = 0.1, **kw) -> RunPlan:
    """ViT and CNN on ``fraction`` of a fixed training set, then on all of it (budget split in four)."""
    small = max(1, int(round(full_size * fraction)))
    c = _split_budget(_fair(cfg), 4)
    legs = [Leg(f"{m} · {p}", m.lower(), dataclasses.replace(c, train_size=n))
            for n, p in ((small, f"{fraction:.0%} data"), (full_size, "100% data")) for m in ("ViT", "CNN")]
    return RunPlan("data-size", legs, **kw)


# --- the page's form -> a plan --------------------------------------------------------------------
@dataclass(frozen=True)
class Choices:
    """What the training page's form chose. None = the layout's preset's value."""

    data: str = "shapes"  # "shapes", a vit_core.data.vision.DATASETS key, or "zip"
    layout: str = "quick"  # a config.LAYOUTS key
    custom: ViTConfig | None = None  # the architecture, for the "custom" layout
    num_classes: int = 10
    shapes_set: int = 0  # Shapes: 0 = fresh images every step, else a fixed set of this many
    zip_images: int | None = None  # images in an uploaded zip
    lr: float | None = None
    weight_decay: float = 0.05
    warmup_steps: int | None = None
    batch_size: int | None = None
    eval_every: int = 25
    seconds: float | None = 60.0  # a time budget, or...
    epochs: int | None = None  # ...passes over the training set
    augment: bool | None = None
    compile: bool = False


def base_config(layout: str) -> TrainConfig:
    """The preset a layout trains with (its defaults fill the form)."""
    return PRESETS[layout_preset(layout)]


def architecture(ch: Choices) -> ViTConfig:
    vit = ch.custom if ch.layout == "custom" else LAYOUTS[ch.layout][1]
    return dataclasses.replace(vit, num_classes=ch.num_classes)


def full_size(ch: Choices) -> int | None:
    """Images in the whole training set (for Shapes with fresh data: what an epoch counts)."""
    if ch.data == "shapes":
        return ch.shapes_set or base_config(ch.layout).train_size or 4000
    if ch.data == "zip":
        return ch.zip_images
    from vit_core.data.vision import DATASETS

    return DATASETS[ch.data].train_images


def epoch_images(ch: Choices) -> int | None:
    """Images per epoch: the training part of the set (a zip's validation share held out)."""
    n = full_size(ch)
    return int(round(n * (1 - ZIP_VAL_FRACTION))) if ch.data == "zip" and n else n


def steps_for(ch: Choices) -> int | None:
    """The step budget of an epoch budget (None for a time budget)."""
    if ch.epochs is None:
        return None
    return max(1, math.ceil(ch.epochs * (epoch_images(ch) or 1) / (ch.batch_size or base_config(ch.layout).batch_size)))


def default_augment(data: str, layout: str) -> bool:
    """The preset's choice, but never for digits: a mirrored 2 is no 2."""
    return base_config(layout).augment and data != "mnist"


def config_for(ch: Choices) -> TrainConfig:
    base = base_config(ch.layout)
    vit = architecture(ch)
    return get_preset(
        layout_preset(ch.layout), vit=vit, img_size=vit.img_size, dataset=ch.data,
        lr=ch.lr or base.lr, weight_decay=ch.weight_decay,
        warmup_steps=base.warmup_steps if ch.warmup_steps is None else int(ch.warmup_steps),
        batch_size=int(ch.batch_size or base.batch_size),
        max_seconds=ch.seconds if ch.epochs is None else None, max_steps=steps_for(ch),
        train_size=(ch.shapes_set or None) if ch.data == "shapes" else None,
        val_size=500 if ch.data != "zip" else 10_000,
        augment=default_augment(ch.data, ch.layout) if ch.augment is None else ch.augment,
        shift_px=max(2, vit.img_size // 12) if ch.layout != "bundled" else base.shift_px,
        eval_every=int(ch.eval_every), snapshot_every=int(ch.eval_every), num_threads=None)


def zip_recipe(images) -> DataRecipe:
    """An uploaded zip (``vit_core.data.zipdata.ZipImages``): a seeded split, as a picklable recipe."""
    tr, va = images.split(ZIP_VAL_FRACTION, seed=0)
    return tensors_recipe(tr.images, tr.labels, va.images, va.labels, images.classes)


def plan_for(kind: str, ch: Choices, data_label: str, zip_images=None, store: ModelStore | None = None,
             owner: str | None = None) -> RunPlan:
    """The plan of experiment ``kind`` ("train", "compare", "data-size") for the form's choices."""
    recipe = None if ch.data == "shapes" else zip_recipe(zip_images) if ch.data == "zip" else vision_recipe(ch.data)
    common = dict(data=recipe, data_label=data_label, store=store, owner=owner, save_name=f"{ch.data}-{ch.layout}",
                  extra_meta={"layout": ch.layout}, compile=ch.compile)
    cfg = config_for(ch)
    if kind == "train":
        return plan_train(cfg, **common)
    if kind == "compare":
        return plan_compare(cfg, **common)
    if kind == "data-size":
        full = epoch_images(ch)
        return plan_data_size(dataclasses.replace(cfg, train_size=full), full, **common)
    raise ValueError(f"Unknown experiment {kind!r}.")


def leg_seconds(cfg: TrainConfig, images_per_s: float | None = None) -> float:
    """About how long a leg trains: its time budget, or its step budget at ``images_per_s``."""
    t = [cfg.max_seconds] if cfg.max_seconds else []
    if cfg.max_steps:
        t.append(cfg.max_steps * cfg.batch_size / (images_per_s or DEFAULT_IMAGES_PER_S))
    return min(t) + PREP_SECONDS


def estimate_seconds(plan: RunPlan, images_per_s: float | None = None) -> float:
    """About how long a whole plan runs, preparation included."""
    return sum(leg_seconds(leg.cfg, images_per_s) for leg in plan.legs)


def start_estimates(remaining: list[float], waiting: list[RunPlan], slots: int,
                    images_per_s: float | None = None) -> list[float]:
    """About how many seconds until each waiting plan starts, in queue order.

    Args:
        remaining: seconds left of each running job.
        waiting: the queue, first in line first.
        slots: jobs that may run at once.
    """
    free = sorted(remaining) + [0.0] * max(0, slots - len(remaining))
    heapq.heapify(free)
    out = []
    for plan in waiting:
        t = heapq.heappop(free)
        out.append(t)
        heapq.heappush(free, t + estimate_seconds(plan, images_per_s))
    return out


__all__ = ["Choices", "Leg", "RunPlan", "architecture", "base_config", "config_for", "default_augment",
           "epoch_images", "estimate_seconds", "full_size", "leg_seconds", "plan_compare", "plan_data_size",
           "plan_for", "plan_train", "start_estimates", "steps_for", "zip_recipe"]
