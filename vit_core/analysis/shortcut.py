"""The shortcut a Shapes model learned: the same scene with and without its class stripes.

The bundled Shapes ViTs were trained with ``ShapesConfig(fill_texture=0.8)``: every object carries
stripes whose frequency and angle are set by its class. The outline carries the class too, but
the stripes are the easier cue, and stage 1 of the recipe (``bundled:shapes-vit-stage1``, striped
images only), a small ViT trained from scratch, took the easier cue (shortcut learning, Geirhos et
al. 2020). Stage 2 (``bundled:shapes-vit``) trained on, besides, plain images (half of each batch)
where only the outline names the class. Turning the stripes off (``fill_texture=0``) shows how
much of a model's answer rests on them.

Stripe amplitude draws nothing from the random generator (``shapes._draw_objects`` computes the
stripes from the object's own frame), so the same seed renders the same object, position, size,
rotation, colours, background and clutter with and without them: only the stripes differ.

Example:
    >>> cfg = card_config("bundled:shapes-vit")
    >>> striped, plain = stripe_pair(cfg, CLASSES.index("ring"), lesson_seed(0))
    >>> bool((striped.mask == plain.mask).all())
    True
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from vit_core.analysis.maps import attention_rollout, rollout_map
from vit_core.data.shapes import CLASSES, ShapesConfig, generate
from vit_core.io.loading import BUNDLED_DIR
from vit_core.model import VisionTransformer

# The page's scenes: far above every seed a training run of the shapes presets draws (step seeds
# of run 0 stay below 7919 * max_steps + 1, about 6.3e7 for 8,000 steps) and apart from the
# evaluation's fresh seeds (10**9 + 7919 k, vit_core.training.evaluate), so an example on the page
# is neither a training image nor one of the measured ones.
LESSON_SEED_BASE = 2_000_000_000


def lesson_seed(scene: int) -> int:
    """The generator seed of the page's scene number ``scene`` (0, 1, 2, ...)."""
    return LESSON_SEED_BASE + int(scene)


def training_config(spec: str) -> dict:
    """The training config a local model's sidecar records (``meta.train_config``; ``{}`` if none).

    Args:
        spec: ``bundled:NAME`` or ``file:PATH`` (a folder or its ``model.safetensors``).
    """
    kind, _, rest = spec.partition(":")
    if kind == "bundled":
        side = BUNDLED_DIR / rest / "model.json"
    elif kind == "file":
        side = Path(rest) / "model.json" if Path(rest).is_dir() else Path(rest).with_suffix(".json")
    else:
        raise ValueError(f"{spec!r} has no local sidecar: only bundled: and file: models record a training config.")
    return dict(json.loads(side.read_text()).get("meta", {}).get("train_config") or {})


def training_data_options(spec: str) -> dict:
    """The ShapesConfig keyword arguments a local model was trained with, ``{}`` when none recorded."""
    return dict(training_config(spec).get("data_options") or {})


def card_config(spec: str = "bundled:shapes-vit") -> ShapesConfig:
    """The Shapes data the model was trained on (the model card's evaluation data)."""
    return ShapesConfig(**training_data_options(spec))


def without_stripes(cfg: ShapesConfig) -> ShapesConfig:
    """``cfg`` with the class stripes off: every other knob kept, so only the stripes change.

    For the bundled model (``fill_texture=0.8`` and nothing else) this is the generator's default
    ``ShapesConfig()``: plain shapes, the class readable from the outline alone.
    """
    return dataclasses.replace(cfg, fill_texture=0.0)


@dataclasses.dataclass(frozen=True)
class Scene:
    """One rendered scene.

    Attributes:
        image: (3, H, W) uint8 RGB.
        mask: (H, W) bool, True on the object.
        label: class index.
        stripes: the stripe amplitude it was drawn with (``fill_texture``).
    """

    image: torch.Tensor
    mask: torch.Tensor
    label: int
    stripes: float


def stripe_pair(cfg: ShapesConfig, cls: int, seed: int, size: int = 224) -> tuple[Scene, Scene]:
    """The same scene of class ``cls`` drawn with ``cfg``'s stripes and with the stripes off.

    Args:
        cfg: the training data's config (its ``fill_texture`` sets the stripes of the first scene).
        cls: class index into ``CLASSES``.
        seed: generator seed; both scenes use it, so they differ only in the stripes.
        size: image side in pixels.

    Returns:
        ``(with_stripes, without_stripes)``.
    """
    if not 0 <= cls < len(CLASSES):
        raise ValueError(f"class index must be in 0..{len(CLASSES) - 1}, got {cls}")
    out = []
    for c in (cfg, without_stripes(cfg)):
        d = generate(1, seed, size, labels=[cls], config=c)
        out.append(Scene(d.images[0], d.masks[0], int(d.labels[0]), c.fill_texture))
    return out[0], out[1]


@dataclasses.dataclass(frozen=True)
class Reading:
    """What the model made of one scene.

    Attributes:
        image: (H, W, 3) uint8, the scene as the model saw it.
        label: the true class index.
        stripes: stripe amplitude of the scene.
        top: index of the most probable class; ``top_p`` its probability.
        true_p: probability of the true class.
        rollout: (gh, gw) attention rollout after the last block, [CLS] row over the patches
            (mean head fusion, no discard: the evaluation's definition).
        on_object: share of that rollout on the object's pixels divided by the object's share
            of the image (1 = no preference for the object).
    """

    image: np.ndarray
    label: int
    stripes: float
    top: int
    top_p: float
    true_p: float
    rollout: np.ndarray
    on_object: float

    @property
    def correct(self) -> bool:
        return self.top == self.label


def _normalise(images: torch.Tensor, data_config: dict) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> the model's input, with the mean and std its data_config names."""
    mean = torch.tensor(data_config.get("mean", (0.5,) * 3)).view(1, -1, 1, 1)
    std = torch.tensor(data_config.get("std", (0.5,) * 3)).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std


@torch.no_grad()
def read_scenes(model: VisionTransformer, data_config: dict, scenes: tuple[Scene, ...]) -> list[Reading]:
    """Prediction and rollout of each scene, in one batch on the model's device.

    Args:
        model: a ViT in eval mode whose input size is the scenes' size.
        data_config: its data_config (mean and std of the normalisation).
        scenes: e.g. a ``stripe_pair``.

    Returns:
        One Reading per scene, in order.
    """
    device = next(model.parameters()).device
    x = _normalise(torch.stack([s.image for s in scenes]), data_config).to(device)
    tr = model.trace(x)
    probs = tr.logits.float().softmax(-1).cpu()
    P, npt = model.cfg.patch_size, tr.num_prefix_tokens
    out = []
    for i, s in enumerate(scenes):
        roll = attention_rollout([a[i] for a in tr.attn], "mean", 0.0, npt)  # (L, T, T)
        r = rollout_map(roll, roll.shape[0], tr.grid, npt)  # (gh, gw)
        gh, gw = tr.grid
        objfrac = s.mask[: gh * P, : gw * P].float().reshape(gh, P, gw, P).mean((1, 3))  # (gh, gw)
        chance = float(objfrac.mean())
        share = float((r * objfrac).sum() / r.sum())
        top = int(probs[i].argmax())
        out.append(Reading(s.image.permute(1, 2, 0).numpy().copy(), s.label, s.stripes, top,
                           float(probs[i, top]), float(probs[i, s.label]), r.numpy(),
                           share / chance if chance > 0 else float("nan")))
    return out


def read_pair(model: VisionTransformer, data_config: dict, cfg: ShapesConfig, cls: int,
              seed: int) -> tuple[Reading, Reading]:
    """``stripe_pair`` at the model's input size, read by the model: (with stripes, without)."""
    a, b = read_scenes(model, data_config, stripe_pair(cfg, cls, seed, model.cfg.img_size))
    return a, b


@torch.no_grad()
def class_with_and_without(model: VisionTransformer, data_config: dict, cfg: ShapesConfig, cls: int,
                           n: int = 40, seed: int = LESSON_SEED_BASE - 1_000_000) -> dict:
    """How often the model names class ``cls`` right on ``n`` scenes, with stripes and without.

    The same ``n`` scenes both times (one seed), so the difference is the stripes' doing alone.

    Returns:
        dict with_stripes, without_stripes (accuracies), n.
    """
    device = next(model.parameters()).device
    acc = {}
    for key, c in (("with_stripes", cfg), ("without_stripes", without_stripes(cfg))):
        d = generate(n, seed, model.cfg.img_size, labels=[cls] * n, config=c)
        pred = model(_normalise(d.images, data_config).to(device)).argmax(-1).cpu()
        acc[key] = float((pred == cls).float().mean())
    return {**acc, "n": n}
