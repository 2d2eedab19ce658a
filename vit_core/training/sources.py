"""Which data a run trains on: ``TrainConfig.dataset`` names, and recipes a worker process can rebuild.

``DATA_SOURCES`` maps a ``TrainConfig.dataset`` name to the function that builds its
``vit_core.data.source.DataSource`` (today: generated Shapes). A :class:`DataRecipe` describes
other data (a torchvision dataset, in-memory images such as an uploaded zip) as plain picklable
values, so that a job's plan can cross into the separate process that trains it;
:func:`build_source` turns either into a DataSource there. UI-free.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vit_core.data.source import DataSource, fixed_set_sampler, step_seed
from vit_core.training.config import TrainConfig

Progress = Callable[[float, str], None]


def shapes_source(cfg: TrainConfig) -> DataSource:
    """The Shapes data for ``cfg``: fresh images every step, or a fixed set of ``cfg.train_size``.

    Args:
        cfg: sizes, seeds and ``data_options`` (Shapes difficulty) of the run.

    Returns:
        A DataSource whose batches carry the object masks when token labelling can use them.
    """
    from vit_core.data.shapes import ShapesConfig, generate

    scfg = ShapesConfig(**cfg.data_options)
    val = generate(cfg.val_size, seed=cfg.val_seed, size=cfg.img_size, config=scfg)
    if cfg.train_size is None and cfg.plain_share > 0:
        return DataSource(mixed_batches(cfg, scfg), val.images, val.labels, val.classes)
    if cfg.train_size is None:  # a fresh batch every step, seeded by (seed, step)
        def batch(step: int):
            d = generate(cfg.batch_size, seed=step_seed(cfg.seed, step), size=cfg.img_size, config=scfg)
            return d.images, d.labels, d.masks
        return DataSource(batch, val.images, val.labels, val.classes)
    train = generate(cfg.train_size, seed=cfg.seed, size=cfg.img_size, config=scfg)
    masks = train.masks if cfg.token_label_weight else None
    return DataSource(fixed_set_sampler(train.images, train.labels, cfg.batch_size, cfg.seed, masks),
                      val.images, val.labels, val.classes, cfg.train_size)


PLAIN_STREAM = 10**7  # step_seed(seed, PLAIN_STREAM + step): the plain images of step `step`


def mixed_batches(cfg: TrainConfig, scfg) -> Callable[[int], tuple]:
    """step -> (images, labels, masks): ``cfg.plain_share`` of each batch without the stripes.

    Each part has its own seed stream (striped: ``step_seed(seed, step)``, plain:
    ``step_seed(seed, PLAIN_STREAM + step)``) and labels drawn uniformly from it, so that a half
    batch is not biased to the first classes (``generate``'s balanced cycle is per call).
    """
    from vit_core.data.shapes import CLASSES, generate

    plain_cfg = dataclasses.replace(scfg, fill_texture=0.0)
    n_plain = round(cfg.batch_size * cfg.plain_share)

    def part(n: int, seed: int, config):
        labels = torch.randint(len(CLASSES), (n,), generator=torch.Generator().manual_seed(seed + 1))
        return generate(n, seed=seed, size=cfg.img_size, labels=labels, config=config)

    def batch(step: int):
        parts = [part(cfg.batch_size - n_plain, step_seed(cfg.seed, step), scfg),
                 part(n_plain, step_seed(cfg.seed, PLAIN_STREAM + step), plain_cfg)]
        parts = [d for d in parts if len(d.labels)]
        return tuple(torch.cat(t) for t in zip(*((d.images, d.labels, d.masks) for d in parts)))
    return batch


DATA_SOURCES: dict[str, Callable[[TrainConfig], DataSource]] = {"shapes": shapes_source}


@dataclass(frozen=True)
class DataRecipe:
    """Data other than ``DATA_SOURCES[cfg.dataset]``, as values (picklable: it crosses processes).

    Attributes:
        kind: "vision" (``name`` is a ``vit_core.data.vision.DATASETS`` key, downloaded if need be)
            or "tensors" (``arrays`` = train images, train labels, val images, val labels).
        arrays: numpy, not tensors: pickled by value, so they need no shared memory (a container's
            /dev/shm is often small).
        classes: the class names, for "tensors".
    """

    kind: str
    name: str = ""
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    classes: tuple[str, ...] = ()


def vision_recipe(name: str) -> DataRecipe:
    return DataRecipe("vision", name=name)


def tensors_recipe(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
                   val_labels: torch.Tensor, classes) -> DataRecipe:
    arrays = tuple(t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
                   for t in (train_images, train_labels, val_images, val_labels))
    return DataRecipe("tensors", arrays=arrays, classes=tuple(classes))


def build_source(cfg: TrainConfig, recipe: DataRecipe | None = None, progress: Progress | None = None) -> DataSource:
    """The DataSource of ``cfg``: from ``recipe`` when given, else ``DATA_SOURCES[cfg.dataset]``.

    ``progress(fraction, message)`` hears about a download.
    """
    if recipe is None:
        return DATA_SOURCES[cfg.dataset](cfg)
    from vit_core.data import vision

    if recipe.kind == "vision":
        return vision.data_source(cfg, recipe.name, progress)
    if recipe.kind == "tensors":
        return vision.tensor_source(cfg, *(torch.from_numpy(a) for a in recipe.arrays), list(recipe.classes))
    raise ValueError(f"Unknown data recipe {recipe.kind!r}.")


__all__ = ["DATA_SOURCES", "PLAIN_STREAM", "DataRecipe", "mixed_batches", "build_source", "shapes_source", "tensors_recipe", "vision_recipe"]
