"""Training configurations: the ``TrainConfig`` dataclass, the named presets and model layouts.

``shapes-demo`` is the recipe of the bundled model (``assets/models/shapes-vit``);
``shapes-quick`` is a tiny model for live training on an easier Shapes variant (measured on one
CPU thread: 95% validation accuracy after ~30 s, 99% after 60 s). ``LAYOUTS`` are the model
shapes the training page offers, each trained with the recipe of ``layout_preset(layout)``.

A ``TrainConfig`` is frozen: derive a variant with ``dataclasses.replace`` (or ``get_preset``
with overrides), never by assignment.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from vit_core.model import ViTConfig


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. Same config (and CPU) -> same weights.

    Attributes:
        vit: architecture; its ``img_size`` is forced to ``img_size``.
        dataset: name of a data source in ``vit_core.training.sources.DATA_SOURCES``.
        img_size: square input side in pixels.
        batch_size, lr, weight_decay: AdamW settings (lr is the peak, after warm-up).
        warmup_steps: linear warm-up, then cosine decay to ``min_lr_ratio * lr``.
        max_steps, max_seconds: budgets; training stops at whichever comes first (None = no
            limit, but at least one must be set). The cosine schedule follows whichever budget is
            closer to being used up, so a time-limited run still ends with a low learning rate.
        seed: model init and training data. val_seed: validation images only (never trained on).
        val_size: number of validation images.
        train_size: None = fresh images every step; an int = a fixed set generated once.
        augment: random translation (up to ``shift_px``) and horizontal flip per image.
        label_smoothing: cross-entropy label smoothing.
        eval_every, snapshot_every: in steps (0 = off; a final eval always runs).
        num_threads: CPU threads of the process that trains: the CLI's, or a job's own worker
            process (None = that process's default). The loop never sets it: torch's thread count
            is process-wide. device: "auto", "cpu" or "cuda".
        grad_clip: max global gradient norm (0 = off). bf16 autocast is used on CUDA only.
        decay_pos_embed: apply weight decay to the position embeddings too (the rule exempts them,
            see ``vit_core.training.loop.param_groups``); decay fades the random init where no
            gradient supports it.
        token_label_weight: weight of an auxiliary token-labelling loss (Jiang et al. 2021): each
            patch token mostly covered by the object (from the data's masks) is read by the same head
            and must name the image's class. Dense supervision speeds up learning from scratch;
            the model and its saved weights are unchanged. 0 = off (or when the data has no masks).
        init_from: start from these weights instead of the seeded random init: a .safetensors of the
            same architecture, or ``"preset:NAME"``, the output of preset NAME (the CLI trains it
            first, or reuses ``build/NAME`` when that holds exactly that preset's run): a second
            stage of a recipe, with a fresh optimiser and its own warm-up and cosine.
        plain_share: fraction of each Shapes batch drawn with the class stripes off
            (``fill_texture=0``), from a separate seed stream; the validation set stays the card's
            data (``data_options``). 0 = every image as ``data_options`` says.
        data_options: extra keyword arguments for the data source (e.g. Shapes difficulty).
    """

    vit: ViTConfig
    dataset: str = "shapes"
    img_size: int = 224
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    max_steps: int | None = 1000
    max_seconds: float | None = None
    seed: int = 0
    val_seed: int = 10_000
    val_size: int = 500
    train_size: int | None = None
    augment: bool = True
    shift_px: int = 16
    label_smoothing: float = 0.1
    eval_every: int = 100
    snapshot_every: int = 0
    num_threads: int | None = None
    device: str = "auto"
    grad_clip: float = 1.0
    decay_pos_embed: bool = False
    token_label_weight: float = 0.0
    init_from: str | None = None
    plain_share: float = 0.0
    data_options: dict = field(default_factory=dict)

    def __post_init__(self):
        vit = ViTConfig.from_dict(self.vit) if isinstance(self.vit, dict) else self.vit  # e.g. JSON overrides
        if vit.img_size != self.img_size:
            vit = dataclasses.replace(vit, img_size=self.img_size)
        object.__setattr__(self, "vit", vit)  # frozen: normalised once, here
        if self.max_steps is None and self.max_seconds is None:
            raise ValueError("Set max_steps or max_seconds (or both).")
        if not 0.0 <= self.plain_share <= 1.0:
            raise ValueError(f"plain_share must lie in [0, 1], not {self.plain_share}.")
        if self.seed == self.val_seed:
            raise ValueError("val_seed must differ from seed: validation images are never trained on.")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["vit"] = self.vit.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["vit"] = ViTConfig.from_dict(d["vit"])
        return cls(**d)


# Stage 1 of the bundled model (its whole recipe until December 2026): the paper's 224 px / 16 px
# patches (14 x 14 grid + [CLS]), narrow and shallow enough to train on a CPU: 8,000 steps of 32 fresh images each (never the same picture
# twice), one thread so that the same machine gives the same weights; 56 minutes here. Shapes
# carry a class-specific stripe texture (amplitude 0.8) and the loss adds token labelling:
# without them the model was still at chance after 55k images. See
# assets/models/shapes-vit/MODEL_CARD.md.
_STAGE1 = TrainConfig(
    vit=ViTConfig(img_size=224, patch_size=16, num_classes=10, embed_dim=96, depth=4,
                  num_heads=3, mlp_ratio=4.0),
    img_size=224, batch_size=32, lr=5e-4, weight_decay=0.05, warmup_steps=100,
    max_steps=8000, max_seconds=5400, seed=0, val_seed=10_000, val_size=500,
    train_size=None, augment=True, shift_px=16, label_smoothing=0.1, eval_every=250,
    snapshot_every=0, num_threads=1, decay_pos_embed=True, token_label_weight=1.0,
    data_options={"fill_texture": 0.8},
)


PRESETS: dict[str, TrainConfig] = {
    "shapes-demo-base": _STAGE1,
    # The bundled model, stage 2: from stage 1's weights (trained first, or reused from
    # build/shapes-demo-base), 6,000 more steps of 32 fresh images of which half carry no stripes,
    # so that the outline has to carry the class too (stage 1 alone: 0.425 on plain shapes).
    # A fresh AdamW, warm-up and cosine at a lower peak; its own seed stream (seed 1). Two threads:
    # the step costs 0.39 s instead of 0.55 s on this 2-core machine, so 6,000 steps take the
    # wall-clock that 4,000 one-thread steps took (~39 minutes; MODEL_CARD.md).
    "shapes-demo": dataclasses.replace(_STAGE1, lr=3e-4, max_steps=6000, max_seconds=4800, seed=1,
                                       init_from="preset:shapes-demo-base", plain_share=0.5, num_threads=2),
    # Small and fast for live training: 48 px, 8 px patches (6 x 6 grid + [CLS]) on an easier Shapes
    # variant: larger objects, no clutter, and faint stripes (amplitude 0.25) inside the object at a
    # class-specific angle in the image frame; fresh images every step (no fixed set to over-fit). No
    # flip augmentation: a mirror image turns the stripes to another class's angle. Measured: 95%
    # validation accuracy after ~550 steps (BENCHMARKS.md).
    "shapes-quick": TrainConfig(
        vit=ViTConfig(img_size=48, patch_size=8, num_classes=10, embed_dim=64, depth=3,
                      num_heads=4, mlp_ratio=2.0),
        img_size=48, batch_size=64, lr=3e-3, weight_decay=0.05, warmup_steps=50,
        max_steps=None, max_seconds=60, seed=0, val_seed=10_000, val_size=500,
        train_size=None, augment=False, shift_px=4, label_smoothing=0.1, eval_every=50,
        snapshot_every=50, token_label_weight=1.0,
        data_options={"fill_texture": 0.25, "texture_frame": "image", "clutter": (0, 0), "min_contrast": 0.5,
                      "area": (0.2, 0.4)},
    ),
}


def get_preset(name: str, **overrides) -> TrainConfig:
    """A copy of preset ``name`` with fields replaced by ``overrides``."""
    if name not in PRESETS:
        raise KeyError(f"Unknown preset {name!r}; choose from {sorted(PRESETS)}.")
    return dataclasses.replace(PRESETS[name], **overrides)


# The model layouts of the training page: (label, architecture; None = the page's custom choice).
# num_classes is the data's, set when a run is planned.
LAYOUTS: dict[str, tuple[str, ViTConfig | None]] = {
    "nano": ("Nano · 32 px, 4 px patches (8×8)",
             ViTConfig(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0)),
    "quick": ("Quick · 48 px, 8 px patches (6×6)", PRESETS["shapes-quick"].vit),
    "tiny": ("Tiny · 64 px, 8 px patches (8×8)",
             ViTConfig(img_size=64, patch_size=8, embed_dim=128, depth=4, num_heads=4, mlp_ratio=2.0)),
    "bundled": ("Bundled model's layout · 224 px, 16 px patches (14×14)", PRESETS["shapes-demo"].vit),
    "custom": ("Custom", None),
}


def layout_preset(layout: str) -> str:
    """The preset whose recipe (learning rate, warm-up, batch, data options) a layout trains with."""
    return "shapes-demo-base" if layout == "bundled" else "shapes-quick"


__all__ = ["LAYOUTS", "PRESETS", "TrainConfig", "get_preset", "layout_preset"]
