"""What the whole site shares and what involves no Streamlit: the page list, paths, defaults.

app.py, the sidebar and Previous/Next all read ``PAGES``; deploy scripts read the paths.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLES = ROOT / "assets" / "samples"
# Models trained in the app. Replicas of a cluster point this at one shared folder (writes are
# atomic, see vit_core.io.loading.save_model).
USER_MODELS = Path(os.environ.get("VIT_MODELS_DIR") or ROOT / "models")
DEFAULT_SPEC = "bundled:shapes-vit"
# Stage 1 of the bundled model's recipe (striped images only): the stripe shortcut, kept for the
# lesson on Critics and impact ("What did this model learn?").
STAGE1_SPEC = "bundled:shapes-vit-stage1"
SHORTCUT_CLASS = "ring"  # the shortcut lesson opens on it (stage 1 misreads its plain scene 0)
IMAGENET_DEFAULT = "timm:vit_base_patch16_224.augreg2_in21k_ft_in1k"

# (file, title, url path, icon), in lecture order. app.py and Previous/Next both read this.
# Each URL path is the file's own name: Streamlit serves the very first request of a fresh server
# in its legacy "pages/ folder" mode, which finds pages by file name only, so a shared deep link
# (the QR code of a lecture) works on a fresh server only if the two agree.
PAGES = [
    ("pages/overview.py", "Overview: 16x16 words", "overview", ":material/home:"),
    ("pages/history.py", "A brief history", "history", ":material/history:"),
    ("pages/pixels_as_tokens.py", "Why not pixels?", "pixels_as_tokens", ":material/grid_on:"),
    ("pages/patches.py", "1 · Patches", "patches", ":material/apps:"),
    ("pages/patch_embedding.py", "2 · Patch embedding", "patch_embedding", ":material/linear_scale:"),
    ("pages/position_embeddings.py", "3 · Position embeddings", "position_embeddings", ":material/my_location:"),
    ("pages/self_attention.py", "4 · Self-attention", "self_attention", ":material/functions:"),
    ("pages/attention.py", "5 · Attention maps", "attention", ":material/visibility:"),
    ("pages/prediction.py", "6 · Prediction", "prediction", ":material/flag:"),
    ("pages/what_if.py", "What if?", "what_if", ":material/science:"),
    ("pages/vit_in_numbers.py", "ViT in numbers", "vit_in_numbers", ":material/leaderboard:"),
    ("pages/critics_impact.py", "Critics and impact", "critics_impact", ":material/forum:"),
    ("pages/train.py", "Train a ViT live", "train", ":material/model_training:"),
    ("pages/appendix.py", "Appendix: self-attention", "appendix", ":material/menu_book:"),
]
# Earlier, shorter URL paths: still served (hidden), so links shared before keep working.
ALIASES = {"pixels": "pages/pixels_as_tokens.py", "embedding": "pages/patch_embedding.py",
           "positions": "pages/position_embeddings.py", "self-attention": "pages/self_attention.py",
           "what-if": "pages/what_if.py", "numbers": "pages/vit_in_numbers.py", "impact": "pages/critics_impact.py"}

# The PNG export of every plotly chart (the mode bar's camera button), at twice the screen size.
PLOTLY_CONFIG = {"toImageButtonOptions": {"format": "png", "scale": 2}, "displaylogo": False}
# One colour per model family wherever ViT and CNN are compared.
FAMILY_COLORS = {"ViT": "#c2410c", "CNN": "#1d4ed8"}


@functools.cache
def existing_pages() -> tuple[tuple[str, str, str, str], ...]:
    """The PAGES entries whose file exists, in order (looked up once: files do not come and go)."""
    return tuple(p for p in PAGES if (ROOT / p[0]).exists())


def sample_names() -> list[str]:
    """The bundled sample images, sorted."""
    return sorted(p.name for p in SAMPLES.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def shortcut_class(names) -> int:
    """The index of the class the shortcut lesson opens on (the first class if a model lacks it)."""
    names = list(names)
    return names.index(SHORTCUT_CLASS) if SHORTCUT_CLASS in names else 0
