"""Pictures of one analysis for the explainer pages, made from the view's parameters alone.

Each function takes the cached ``explain.Analysis`` (or the model's figures) and the widget
values, and returns an (H, W, 3) uint8 array. The pages hand them to ``cache.encoded`` and to
deferred PNG downloads, so that a picture is drawn and encoded once per view, not on every run.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from vit_core.analysis import attention_views
from vit_core.analysis.explain import Analysis, patch_map
from vit_core.io import images
from vit_core.render import drawing, figures


def token_overlay(a: Analysis, row: np.ndarray, cmap: str = "inferno", alpha: float = 0.6) -> np.ndarray:
    """A length-T row over the tokens (scores, weights, a rollout row) blended onto the enlarged
    image: prefix tokens dropped, one cell per patch."""
    return figures.overlay(figures.upscale_to(a.image), patch_map(a, row), cmap, alpha)


def map_overlay(a: Analysis, m: np.ndarray, cmap: str = "inferno", alpha: float = 0.6) -> np.ndarray:
    """A (gh, gw) map (a relevance map) blended onto the enlarged image."""
    return figures.overlay(figures.upscale_to(a.image), m, cmap, alpha)


def query_overlay(a: Analysis, layer: int, head: str, query: int, cmap: str, alpha: float) -> np.ndarray:
    """Where token ``query`` looks in ``layer`` (0-based): one head ("1".."h") or their "mean";
    the query patch itself outlined in cyan (as on the picker beside it)."""
    qmaps = attention_views.query_maps(a, layer, query)  # (h, gh, gw)
    m = qmaps.mean(0) if head == "mean" else qmaps[int(head) - 1]
    big = figures.upscale_to(a.image)
    out = figures.overlay(big, m, cmap, alpha)
    n = a.num_prefix_tokens
    if query >= n:
        cell = big.shape[1] // a.grid[1]
        out = figures.outline_cell(out, query - n, a.grid[1], cell, width=max(3, cell // 8))
    return out


def query_strip(a: Analysis, layer: int, query: int, cmap: str, alpha: float, tile: int) -> np.ndarray:
    """The same query in every head of one layer, as a labelled strip of overlays."""
    qmaps = attention_views.query_maps(a, layer, query)  # (h, gh, gw)
    return drawing.labelled_mosaic(drawing.overlay_tiles(a.image, qmaps[None], cmap, alpha, tile=tile),
                                   row_names=[f"L{layer + 1}"])


def cls_overlay(a: Analysis, layer: int, fusion: str, cmap: str, alpha: float) -> np.ndarray:
    """Raw [CLS] attention of one layer (0-based), its heads fused by mean, max or min."""
    fused = attention_views.fuse(attention_views.cls_maps(a)[layer], fusion)  # (gh, gw)
    return figures.overlay(figures.upscale_to(a.image), fused, cmap, alpha)


def grid_view(image: np.ndarray, patch: int, target: int = 448) -> np.ndarray:
    """The image enlarged by a whole factor to about ``target`` px with its patch grid drawn on it."""
    scale = max(1, target // image.shape[0])
    return figures.draw_grid(figures.upscale(image, scale), patch * scale)


def crop_preview(data: bytes, crop_box, whole: bool, longest: int = 900, smallest: int = 480) -> np.ndarray:
    """The uploaded picture (its file bytes) at most ``longest`` px, with the part the model keeps
    framed and the rest dimmed (no frame when it keeps all of it). Tiny originals are enlarged
    crisply to at least ``smallest`` px wide so that both pictures on the page show the same pixels.

    Takes the bytes rather than the decoded image so that a deferred download holds nothing larger.
    """
    original = images.load_image(data)
    thumb = original.copy()
    thumb.thumbnail((longest, longest))
    if thumb.width < smallest:
        f = -(-smallest // thumb.width)
        thumb = thumb.resize((thumb.width * f, thumb.height * f), Image.NEAREST)
    shrink = thumb.width / original.width
    box = None if crop_box is None or whole else tuple(v * shrink for v in crop_box)
    return drawing.draw_box(np.asarray(thumb), box, width=max(3, thumb.width // 150))


def similarity_grid(sim: np.ndarray, cmap: str, shared: bool, tile: int, highlight: int | None = None,
                    label: str = "") -> np.ndarray:
    """The position-similarity mosaic; with ``label``, its colour bar underneath (for the download)."""
    mosaic, _ = drawing.similarity_mosaic(sim, cmap, shared=shared, tile=tile, highlight=highlight)
    if not label:
        return mosaic
    bar = similarity_bar(cmap, shared, mosaic.shape[1], label)
    return np.concatenate([mosaic, np.full((12, mosaic.shape[1], 3), 255, np.uint8), bar])


def similarity_bar(cmap: str, shared: bool, width: int, label: str) -> np.ndarray:
    """The colour bar of the position-similarity mosaic: -1..1 when shared, else 0..1 per tile."""
    return drawing.colorbar_image(cmap, -1 if shared else 0, 1, width=width, label=label)


def mosaic_pitch(grid: tuple[int, int], tile: int, pad: int = 2) -> tuple[int, int]:
    """(pitch between tile origins, mosaic width) of ``drawing.similarity_mosaic``, without drawing it."""
    gh, gw = grid
    scale = max(1, tile // max(gh, gw))
    pitch = max(gh, gw) * scale + pad
    return pitch, gw * (gw * scale + pad) + pad
