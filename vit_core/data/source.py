"""What the training loop eats: the DataSource interface, seeded sampling and batch preprocessing.

A :class:`DataSource` hands the loop uint8 batches by step number; :func:`fixed_set_sampler`
turns a fixed set of images into such batches, seeded by :func:`step_seed`. :func:`normalize`
and :func:`augment` turn uint8 batches into what the model is trained on. UI-free and free of
training configurations: which source a ``TrainConfig`` names is ``vit_core.training.sources``'s
business (that layer imports this module, never the reverse).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# What `normalize` applies; a trained model's data_config records it so inference matches.
MEAN = STD = (0.5, 0.5, 0.5)


# --- data sources ---------------------------------------------------------------------------
@dataclass
class DataSource:
    """What the loop needs from a dataset. Images are uint8 (B, 3, H, W)."""

    train_batch: Callable[[int], tuple]  # step -> (images, labels) or (images, labels, masks)
    val_images: torch.Tensor
    val_labels: torch.Tensor
    classes: list[str]
    train_size: int | None = None  # fixed-set size, None for fresh data


def step_seed(seed: int, step: int) -> int:
    """The seed of step ``step`` of run ``seed``; negative steps name the loop's other streams
    (-1 - epoch: the fixed set's permutation of that epoch; -10**6: augmentation)."""
    return (seed * 1_000_003 + step * 7919 + 1) % (2**62)


def fixed_set_sampler(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                      masks: torch.Tensor | None = None) -> Callable[[int], tuple]:
    """Epochs of seeded permutations; batch k of the run is a pure function of (seed, k).

    Returns:
        step -> (images, labels), plus the masks when ``masks`` is given.
    """
    n = len(labels)
    per_epoch = max(1, n // batch_size)

    def batch(step: int):
        epoch, k = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(step_seed(seed, -1 - epoch)))
        idx = perm[k * batch_size:(k + 1) * batch_size]
        return (images[idx], labels[idx]) + (() if masks is None else (masks[idx],))
    return batch


# --- batch preprocessing --------------------------------------------------------------------
def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (x/255 - 0.5) / 0.5, matching data_config mean = std = 0.5."""
    return (images.float() / 255.0 - 0.5) / 0.5


def augment(x: torch.Tensor, shift: int, g: torch.Generator) -> torch.Tensor:
    """Per image: random translation by up to ``shift`` px (edge-replicated) and a horizontal flip.

    A mirrored Shapes object keeps its class (every class is left-right symmetric or has a mirror
    twin in the same class), so flips are label-preserving.
    """
    B, _, H, W = x.shape
    flip = torch.rand(B, generator=g) < 0.5
    x = torch.where(flip.view(B, 1, 1, 1), x.flip(-1), x)
    if shift <= 0:
        return x
    xp = F.pad(x, (shift,) * 4, mode="replicate")
    off = torch.randint(0, 2 * shift + 1, (B, 2), generator=g).tolist()
    return torch.stack([xp[i, :, oy:oy + H, ox:ox + W] for i, (oy, ox) in enumerate(off)])


__all__ = ["DataSource", "MEAN", "STD", "augment", "fixed_set_sampler", "normalize", "step_seed"]
