"""Datasets used to train and demonstrate the bundled ViT."""

from vit_core.datasets.shapes import CLASSES, ShapesConfig, ShapesData, generate, render_scene

__all__ = ["CLASSES", "ShapesConfig", "ShapesData", "generate", "render_scene"]
