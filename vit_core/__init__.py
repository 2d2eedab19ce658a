"""ViT Explainer's library: the model, its loaders and the analyses the app shows.

No Streamlit here: every function takes and returns tensors, arrays or figures, so the same
code serves the app, the tests, the benchmarks and the command line.
"""
from vit_core.model import ViTConfig, ViTTrace, VisionTransformer, count_params

__all__ = ["ViTConfig", "ViTTrace", "VisionTransformer", "count_params"]
