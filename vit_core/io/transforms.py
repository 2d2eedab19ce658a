"""The eval transform (resize, centre crop, to tensor, normalise) without importing torchvision.

timm's ``create_transform(**data_config, is_training=False)`` builds this pipeline from
torchvision classes, and importing torchvision (which pulls in ``torch._dynamo``) costs about
1.7 s on this 2-core CPU: most of the gap between ``streamlit run`` and the first analysed page
with the bundled model. So for the common case (``crop_mode`` "center", a square input) this module
builds the same steps with Pillow and torch, bit-identical to timm's (``tests/test_transforms.py``
compares them on odd sizes, crop percentages and interpolations); anything else goes to timm.

The step classes carry torchvision's names and attributes (``size``, ``interpolation.value``,
``mean``, ``std``) so that ``preprocess.preprocess_plan`` walks either pipeline the same way.
"""
from __future__ import annotations

import enum
import math

import numpy as np
import torch
from PIL import Image

from vit_core import LAZY_IMPORTS


class InterpolationMode(enum.Enum):
    """The interpolation names timm's data configs use (torchvision's enum values)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    LANCZOS = "lanczos"


_PIL = {InterpolationMode.NEAREST: Image.NEAREST, InterpolationMode.BILINEAR: Image.BILINEAR,
        InterpolationMode.BICUBIC: Image.BICUBIC, InterpolationMode.LANCZOS: Image.LANCZOS}


class Resize:
    """Shorter side to ``size`` px, keeping the aspect (torchvision's Resize with an int size)."""

    def __init__(self, size: int, interpolation: InterpolationMode = InterpolationMode.BILINEAR):
        self.size, self.interpolation = int(size), interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.size, int(self.size * long / short)  # int(): torchvision truncates
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        return img.resize((new_w, new_h), _PIL[self.interpolation])

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation.value})"


class CenterCrop:
    """The middle ``size`` x ``size`` pixels, zero-padded first where the image is smaller."""

    def __init__(self, size: int):
        self.size = (int(size), int(size))

    def __call__(self, img: Image.Image) -> Image.Image:
        ch, cw = self.size
        w, h = img.size
        if cw > w or ch > h:  # torchvision pads with zeros: left/top get the smaller half
            pw, ph = max(cw - w, 0), max(ch - h, 0)
            canvas = Image.new(img.mode, (w + pw, h + ph), 0)
            canvas.paste(img, (pw // 2, ph // 2))
            img, (w, h) = canvas, canvas.size
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        return img.crop((left, top, left + cw, top + ch))

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class ToTensor:
    """PIL RGB (H, W, 3) uint8 -> float tensor (3, H, W) in [0, 1]."""

    def __call__(self, img: Image.Image) -> torch.Tensor:
        x = torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8, copy=True))  # (H, W, 3)
        return x.permute(2, 0, 1).contiguous().float().div(255)  # (H, W, 3) -> (3, H, W)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean) / std per channel."""

    def __init__(self, mean, std):
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)  # (3, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return x.sub(mean).div(std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Compose:
    """Steps applied in order; ``transforms`` lists them (as torchvision's Compose does)."""

    def __init__(self, transforms: list):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


def eval_transform(data_config: dict):
    """The eval transform for a timm-style data config (input_size, interpolation, mean, std,
    crop_pct, crop_mode): this module's pipeline when it can match timm's exactly, else timm's."""
    _, h, w = data_config["input_size"]
    interp = str(data_config.get("interpolation", "bilinear"))
    crop_pct = data_config.get("crop_pct") or 0.875  # timm's DEFAULT_CROP_PCT
    if (h == w and data_config.get("crop_mode", "center") in (None, "center")
            and interp in InterpolationMode._value2member_map_):
        return Compose([Resize(math.floor(h / crop_pct), InterpolationMode(interp)), CenterCrop(h),
                        ToTensor(), Normalize(data_config["mean"], data_config["std"])])
    with LAZY_IMPORTS:
        from timm.data import create_transform  # imports torchvision: slow, so only when needed

    return create_transform(**data_config, is_training=False)


__all__ = ["eval_transform", "Compose", "Resize", "CenterCrop", "ToTensor", "Normalize", "InterpolationMode"]
