"""A tiny random ViT and one analysis of a noise image: fast fixtures for library tests."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vit_core.analysis import explain
from vit_core.model import ViTConfig, VisionTransformer


def tiny_analysis(size: int, depth: int, image_px: int, num_classes: int) -> tuple[explain.Analysis, VisionTransformer]:
    """``explain.analyze`` on a seeded random ViT (patch 8, width 24, 3 heads) and a noise image; the model."""
    torch.manual_seed(0)
    cfg = ViTConfig(img_size=size, patch_size=8, embed_dim=24, depth=depth, num_heads=3, num_classes=num_classes)
    model = VisionTransformer(cfg).eval()

    def transform(img: Image.Image) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(img.convert("RGB").resize((size, size)), np.float32) / 255)
        return (x.permute(2, 0, 1) - 0.5) / 0.5  # (3, H, W)

    img = Image.fromarray((np.random.default_rng(0).random((image_px, image_px, 3)) * 255).astype(np.uint8))
    return explain.analyze(model, transform, {"mean": (0.5,) * 3, "std": (0.5,) * 3}, img), model
