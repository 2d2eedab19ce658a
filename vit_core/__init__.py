"""ViT Explainer's library: the model, its loaders and the analyses the app shows.

No Streamlit here: every function takes and returns tensors, arrays or figures, so the same
code serves the app, the tests, the benchmarks and the command line.
"""
import threading

# Lazy imports of timm and torchvision (seconds of work, circular inside) run one thread at a time:
# two sessions importing timm at once got a partially initialised module (ImportError).
LAZY_IMPORTS = threading.RLock()

from vit_core.model import ViTConfig, ViTTrace, VisionTransformer, count_params

__all__ = ["ViTConfig", "ViTTrace", "VisionTransformer", "count_params"]
