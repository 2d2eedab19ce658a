"""Small pure helpers for the embedding pages (1 Patches, 2 Patch embedding, 3 Position embeddings).

Everything here is numpy / PIL / torch only (no Streamlit): the pages do layout and words, these
functions do the arithmetic and draw the server-side images they show.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from vit_core import analysis
from vit_core.model import VisionTransformer

# --------------------------------------------------------------------------------------------
# Page 1: preprocessing and token counts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrepStep:
    """One step of the model's preprocessing, with the image size (width, height) after it."""

    name: str
    text: str
    size: tuple[int, int]


@dataclass(frozen=True)
class PrepPlan:
    steps: list[PrepStep]
    crop_box: tuple[float, float, float, float] | None  # (left, top, right, bottom) in the ORIGINAL image
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _pair(size) -> tuple[int, int]:
    """torchvision size argument -> (h, w); an int means 'shorter side' for Resize."""
    if isinstance(size, int):
        return size, size
    size = list(size)
    return (int(size[0]), int(size[0])) if len(size) == 1 else (int(size[0]), int(size[1]))


def _resize_output(w: int, h: int, size, max_size=None) -> tuple[int, int]:
    """The (w, h) torchvision's Resize gives: an int resizes the shorter side, keeping the aspect."""
    if isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 1):
        s = size if isinstance(size, int) else int(size[0])
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = s, int(s * long / short)
        if max_size is not None and new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_short, new_long) if w <= h else (new_long, new_short)
    th, tw = _pair(size)
    return tw, th


def preprocess_plan(transform, width: int, height: int, data_config: dict) -> PrepPlan:
    """Walk the model's eval transform (a torchvision Compose) and say what each step does here.

    Sizes are followed through Resize / CenterCrop (torchvision and timm's variants) so the crop
    can be drawn on the original image; unknown steps are listed by name with their repr.
    """
    steps: list[PrepStep] = [PrepStep("Original", f"{width} x {height} pixels", (width, height))]
    w, h = float(width), float(height)
    # map from current coordinates back to the original: orig = offset + cur * scale
    sx, sy, ox, oy = 1.0, 1.0, 0.0, 0.0
    box_known = True
    mean = tuple(float(m) for m in data_config.get("mean", (0.5, 0.5, 0.5)))
    std = tuple(float(s) for s in data_config.get("std", (0.5, 0.5, 0.5)))
    parts = getattr(transform, "transforms", [transform])
    for t in parts:
        cls = type(t).__name__
        interp = getattr(t, "interpolation", None)
        interp = getattr(interp, "value", interp)
        if cls == "Resize":
            nw, nh = _resize_output(int(w), int(h), t.size, getattr(t, "max_size", None))
            kind = "shorter side to" if isinstance(t.size, int) or len(list(t.size)) == 1 else "exactly to"
            s = t.size if isinstance(t.size, int) else list(t.size)
            sx, sy = sx * w / nw, sy * h / nh
            w, h = float(nw), float(nh)
            steps.append(PrepStep("Resize", f"{kind} {s} ({interp}): {nw} x {nh}", (nw, nh)))
        elif cls == "ResizeKeepRatio":
            th, tw = _pair(t.size)
            ratio = max(h / th, w / tw) if getattr(t, "longest", 0.0) else min(h / th, w / tw)
            nw, nh = int(round(w / ratio)), int(round(h / ratio))
            sx, sy = sx * w / nw, sy * h / nh
            w, h = float(nw), float(nh)
            steps.append(PrepStep("Resize", f"keep aspect, fit {th} x {tw} ({interp}): {nw} x {nh}", (nw, nh)))
        elif cls in ("CenterCrop", "CenterCropOrPad"):
            ch, cw = _pair(t.size)
            left, top = int(round((w - cw) / 2.0)), int(round((h - ch) / 2.0))
            ox, oy = ox + left * sx, oy + top * sy
            pad = " (padded: the image is smaller)" if cw > w or ch > h else ""
            w, h = float(cw), float(ch)
            steps.append(PrepStep("Centre crop", f"{cw} x {ch} from the middle{pad}", (cw, ch)))
        elif cls in ("ToTensor", "MaybeToTensor", "PILToTensor", "ToImage", "ToDtype"):
            steps.append(PrepStep("To tensor", "pixel values 0..255 -> 0..1, shape C x H x W", (int(w), int(h))))
        elif cls in ("Normalize", "MaybeNormalize"):
            mean = tuple(float(m) for m in getattr(t, "mean", mean))
            std = tuple(float(s) for s in getattr(t, "std", std))
            steps.append(PrepStep("Normalise", "(x - mean) / std per colour channel", (int(w), int(h))))
        else:
            box_known = False
            steps.append(PrepStep(cls, repr(t)[:120], (int(w), int(h))))
    crop = (ox, oy, ox + w * sx, oy + h * sy) if box_known else None
    return PrepPlan(steps, crop, mean, std)


def keeps_everything(box, width: int, height: int, tol: float = 0.5) -> bool:
    """Whether a crop box (left, top, right, bottom) covers the whole width x height image."""
    l, t, r, b = box
    return l <= tol and t <= tol and r >= width - tol and b >= height - tol


def draw_box(image: np.ndarray, box, color=(0, 255, 255), width: int = 4) -> np.ndarray:
    """The image with a rectangle (left, top, right, bottom) drawn on it, dimming what lies outside."""
    pil = Image.fromarray(image).convert("RGB")
    if box is not None:
        l, t, r, b = (float(v) for v in box)
        arr = np.asarray(pil).astype(np.float32)
        mask = np.full(arr.shape[:2], 0.35, np.float32)
        H, W = mask.shape
        mask[max(0, int(t)):min(H, int(math.ceil(b))), max(0, int(l)):min(W, int(math.ceil(r)))] = 1.0
        pil = Image.fromarray((arr * mask[..., None]).clip(0, 255).astype(np.uint8))
        ImageDraw.Draw(pil).rectangle([l, t, r - 1, b - 1], outline=color, width=width)
    return np.asarray(pil)


def fit_width(image: np.ndarray, target: int = 640) -> np.ndarray:
    """Resize an image to `target` pixels wide (bilinear down, nearest up), keeping the aspect."""
    h, w = image.shape[:2]
    if w == target:
        return image
    nh = max(1, round(h * target / w))
    resample = Image.NEAREST if target > w else Image.BILINEAR
    return np.asarray(Image.fromarray(image).resize((target, nh), resample))


def divisors_between(n: int, lo: int, hi: int) -> list[int]:
    return [d for d in range(max(1, lo), min(n, hi) + 1) if n % d == 0]


def patch_size_options(height: int, width: int, lo: int = 2, hi: int | None = None) -> list[int]:
    """Patch sizes that tile an H x W image exactly (common divisors), from lo to hi (default min(H, W))."""
    hi = min(height, width) if hi is None else hi
    return [d for d in divisors_between(math.gcd(height, width), lo, hi)]


def token_counts(height: int, width: int, patch: int, prefix: int = 1) -> dict:
    """What a patch size P means for an H x W image: grid, N, T = N + prefix, T^2 attention scores."""
    if patch <= 0:
        raise ValueError("patch size must be positive")
    gh, gw = height // patch, width // patch
    N = gh * gw
    T = N + prefix
    return dict(patch=patch, gh=gh, gw=gw, N=N, T=T, T2=T * T, values=3 * patch * patch,
                leftover=(height - gh * patch, width - gw * patch))


def cost_curve(height: int, width: int, prefix: int, sizes: list[int]) -> dict[str, list[int]]:
    """Token count and attention cost for each patch size, for the cost chart."""
    rows = [token_counts(height, width, p, prefix) for p in sizes]
    return {k: [r[k] for r in rows] for k in ("patch", "N", "T", "T2")}


def patch_tiles(image: np.ndarray, patch: int) -> np.ndarray:
    """Cut an image (H, W, 3) into its patches in reading order: (N, P, P, 3)."""
    h, w = image.shape[:2]
    gh, gw = h // patch, w // patch
    img = image[: gh * patch, : gw * patch]
    return img.reshape(gh, patch, gw, patch, -1).transpose(0, 2, 1, 3, 4).reshape(gh * gw, patch, patch, -1)


@lru_cache(maxsize=8)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (ships with matplotlib) at a projector-friendly size."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default(size=size)


def labelled_tiles(tiles: np.ndarray, labels: list[str], cols: int, tile_px: int = 96, pad: int = 8,
                   font_size: int = 22, label_h: int | None = None, bg=(255, 255, 255),
                   fg=(20, 20, 20)) -> np.ndarray:
    """Tiles (n, h, w, 3) uint8, enlarged (nearest) to tile_px, each with a label underneath."""
    n = len(tiles)
    label_h = label_h or int(font_size * 1.5)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    cw, ch = tile_px + pad, tile_px + label_h + pad
    canvas = Image.new("RGB", (cols * cw + pad, rows * ch + pad), bg)
    d = ImageDraw.Draw(canvas)
    f = font(font_size)
    for i in range(n):
        r, c = divmod(i, cols)
        x, y = pad + c * cw, pad + r * ch
        tile = Image.fromarray(tiles[i]).resize((tile_px, tile_px), Image.NEAREST)
        canvas.paste(tile, (x, y))
        d.rectangle([x - 1, y - 1, x + tile_px, y + tile_px], outline=(120, 120, 120), width=1)
        d.text((x + tile_px / 2, y + tile_px + label_h / 2), labels[i], fill=fg, font=f, anchor="mm")
    return np.asarray(canvas)


def token_sequence(image: np.ndarray, patch: int, count: int, cols: int, tile_px: int = 80,
                   with_cls: bool = True) -> np.ndarray:
    """The first `count` patches in reading order as a labelled sequence, [CLS] first if asked."""
    tiles = patch_tiles(image, patch)
    count = max(1, min(count, len(tiles)))
    shown = tiles[:count]
    labels = [str(i) for i in range(count)]
    if with_cls:
        cls_tile = np.full((patch, patch, 3), 235, np.uint8)
        shown = np.concatenate([cls_tile[None], shown])
        labels = ["[CLS]"] + labels
    out = labelled_tiles(shown, labels, cols=cols, tile_px=tile_px)
    if with_cls:  # the [CLS] tile is a learned vector, not a piece of the image: say so inside it
        pil = Image.fromarray(out)
        ImageDraw.Draw(pil).text((8 + tile_px / 2, 8 + tile_px / 2), "learned", fill=(90, 90, 90),
                                 font=font(max(10, int(tile_px * 0.2))), anchor="mm")
        out = np.asarray(pil)
    return out


def numbered_grid(image: np.ndarray, patch: int, scale: int, highlight_first: int = 0,
                  font_size: int = 0) -> np.ndarray:
    """The image enlarged with its patch grid and each patch's index (reading order) written in it.

    `highlight_first` tints the first patches (those shown in the sequence strip).
    """
    big = image.repeat(scale, 0).repeat(scale, 1) if scale > 1 else image.copy()
    cell = patch * scale
    h, w = big.shape[:2]
    gh, gw = h // cell, w // cell
    pil = Image.fromarray(big).convert("RGB")
    if highlight_first:
        over = Image.new("RGBA", pil.size, (0, 0, 0, 0))
        od = ImageDraw.Draw(over)
        for i in range(min(highlight_first, gh * gw)):
            r, c = divmod(i, gw)
            od.rectangle([c * cell, r * cell, (c + 1) * cell, (r + 1) * cell], fill=(0, 200, 255, 70))
        pil = Image.alpha_composite(pil.convert("RGBA"), over).convert("RGB")
    d = ImageDraw.Draw(pil)
    for x in range(0, gw * cell + 1, cell):
        d.line([(x, 0), (x, gh * cell)], fill=(255, 255, 255), width=2)
    for y in range(0, gh * cell + 1, cell):
        d.line([(0, y), (gw * cell, y)], fill=(255, 255, 255), width=2)
    n = gh * gw
    # up to 100 patches: number every one; more: the first row, the first column, the tinted
    # patches and the last one, so that the picture stays visible
    labelled = range(n) if n <= 100 else sorted(
        {*range(gw), *range(0, n, gw), *range(min(highlight_first, n)), n - 1})
    fs = font_size or max(9, min(28, int(cell * (0.36 if n <= 100 else 0.42))))
    f = font(fs, bold=True)
    for i in labelled:
        r, c = divmod(i, gw)
        cx, cy = c * cell + cell / 2, r * cell + cell / 2
        d.text((cx, cy), str(i), fill=(255, 255, 255), font=f, anchor="mm", stroke_width=max(1, fs // 8),
               stroke_fill=(0, 0, 0))
    return np.asarray(pil)


def grid_overlay(image: np.ndarray, patch: int, target: int = 560) -> np.ndarray:
    """The image shown about `target` px wide with a P x P grid on it (any P, nearest enlargement)."""
    h, w = image.shape[:2]
    scale = max(1, target // max(h, w))
    big = image.repeat(scale, 0).repeat(scale, 1) if scale > 1 else image.copy()
    pil = Image.fromarray(big).convert("RGB")
    d = ImageDraw.Draw(pil)
    cell = patch * scale
    gh, gw = h // patch, w // patch
    lw = 1 if cell < 10 else 2
    for x in range(0, gw * cell + 1, cell):
        d.line([(x, 0), (x, gh * cell)], fill=(255, 255, 255), width=lw)
    for y in range(0, gh * cell + 1, cell):
        d.line([(0, y), (gw * cell, y)], fill=(255, 255, 255), width=lw)
    return np.asarray(pil)


# --------------------------------------------------------------------------------------------
# Page 2: patch embedding
# --------------------------------------------------------------------------------------------


def patch_channels(flat: np.ndarray, channels: int, patch: int) -> np.ndarray:
    """A flattened patch (C*P*P, channel-major as the conv weight) back to (C, P, P)."""
    return np.asarray(flat).reshape(channels, patch, patch)


def channel_planes(image_patch: np.ndarray, tile_px: int = 160) -> np.ndarray:
    """One RGB patch (P, P, 3) uint8, then its red, green and blue planes, side by side, enlarged."""
    planes = [image_patch]
    for ch in range(3):
        p = np.zeros_like(image_patch)
        p[..., ch] = image_patch[..., ch]
        planes.append(p)
    return labelled_tiles(np.stack(planes), ["patch", "R", "G", "B"], cols=4, tile_px=tile_px, font_size=26)


def most_varied_patch(patches: np.ndarray) -> int:
    """The patch whose flattened values vary most (a default pick with some structure to see)."""
    return int(np.argmax(np.asarray(patches).std(axis=1)))


def log_ticks(values: list[int], keep: int, min_gap: float = 0.2) -> list[int]:
    """A subset of positive values to label on a log axis: `keep` always, then others in order
    when at least `min_gap` decades from every label so far (no overlapping tick labels)."""
    chosen = [keep]
    for v in sorted(values, key=lambda v: (v & (v - 1) != 0, v)):  # powers of two first
        if all(abs(math.log10(v) - math.log10(c)) >= min_gap for c in chosen):
            chosen.append(v)
    return sorted(chosen)


def embedding_parts(model: VisionTransformer, grid: tuple[int, int], patch_embed: np.ndarray,
                    tokens0: np.ndarray) -> dict:
    """How z_0 = [x_class; x_p E] + E_pos is put together for this input, with vector norms.

    Args:
        model: the ViT (its pos_embed and class token are read, nothing is changed).
        grid: (gh, gw) of this input.
        patch_embed: (N, D) x_p E + b from the trace.
        tokens0: (T, D) the encoder input z_0 from the trace.

    Returns:
        dict with the pieces' norms (per patch arrays and [CLS] scalars), shapes, and
        ``rebuild_diff``: max |[cls; x_p E] + E_pos - z_0| (None when the model applies a
        pre-norm, which z_0 then includes).
    """
    n_pre = model.num_prefix_tokens
    with torch.no_grad():
        pos = model.resized_pos_embed(tuple(grid))[0].float().cpu().numpy()  # (T or N, D)
        prefix = [t[0].float().cpu().numpy() for t in (model.cls_token, model.reg_token) if t is not None]
    prefix_vecs = np.concatenate(prefix, 0) if prefix else np.zeros((0, patch_embed.shape[1]), np.float32)
    if model.cfg.no_embed_class:
        pos_patch, pos_prefix = pos, np.zeros_like(prefix_vecs)
        rebuilt = np.concatenate([prefix_vecs, patch_embed + pos], 0)
    else:
        pos_patch, pos_prefix = pos[n_pre:], pos[:n_pre]
        rebuilt = np.concatenate([prefix_vecs, patch_embed], 0) + pos
    pre_norm = model.cfg.pre_norm
    diff = None if pre_norm or rebuilt.shape != tokens0.shape else float(np.abs(rebuilt - tokens0).max())
    return dict(
        N=patch_embed.shape[0], T=tokens0.shape[0], D=patch_embed.shape[1], prefix=n_pre,
        patch_norm=np.linalg.norm(patch_embed, axis=1),  # (N,)
        pos_norm=np.linalg.norm(pos_patch, axis=1),  # (N,)
        token_norm=np.linalg.norm(tokens0[n_pre:], axis=1),  # (N,)
        cls_norm=float(np.linalg.norm(prefix_vecs[0])) if n_pre else None,
        cls_pos_norm=float(np.linalg.norm(pos_prefix[0])) if n_pre and len(pos_prefix) else None,
        pos_shape=tuple(model.pos_embed.shape[1:]),
        rebuild_diff=diff, pre_norm=pre_norm,
    )


def pcs_mosaic(pcs: np.ndarray, cols: int = 7, tile_px: int = 84, var: np.ndarray | None = None) -> np.ndarray:
    """Filter principal components (k, P, P, C) in [0, 1] -> labelled RGB tiles (paper Fig 7 left)."""
    tiles = (np.clip(pcs, 0, 1) * 255).round().astype(np.uint8)
    if tiles.shape[-1] == 1:
        tiles = tiles.repeat(3, -1)
    labels = [f"{i + 1}" + (f": {var[i]:.1%}" if var is not None else "") for i in range(len(tiles))]
    return labelled_tiles(tiles, labels, cols=cols, tile_px=tile_px, font_size=17)


# --------------------------------------------------------------------------------------------
# Page 3: position embeddings
# --------------------------------------------------------------------------------------------


def colorize_fixed(m: np.ndarray, cmap: str = "RdBu_r", vmin: float = -1.0, vmax: float = 1.0,
                   scale: int = 1) -> np.ndarray:
    """A 2-D map -> (H, W, 3) uint8 on a FIXED colour scale [vmin, vmax] (so tiles compare)."""
    x = (np.asarray(m, np.float32) - vmin) / max(vmax - vmin, 1e-12)
    rgb = (matplotlib.colormaps[cmap](np.clip(x, 0, 1))[..., :3] * 255).astype(np.uint8)
    return rgb.repeat(scale, 0).repeat(scale, 1) if scale > 1 else rgb


def similarity_mosaic(sim: np.ndarray, cmap: str = "RdBu_r", shared: bool = True, tile: int = 56,
                      pad: int = 2, highlight: int | None = None) -> tuple[np.ndarray, int]:
    """All N similarity tiles (N, gh, gw) on the gh x gw grid (paper Fig 7 centre).

    shared=True colours every tile on one scale -1..1; False stretches each tile to its own
    min..max. Returns the mosaic and the pitch in pixels between tile origins (tile + pad).
    """
    N, gh, gw = sim.shape
    scale = max(1, tile // max(gh, gw))
    th, tw = gh * scale, gw * scale
    H, W = gh * (th + pad) + pad, gw * (tw + pad) + pad
    out = np.full((H, W, 3), 255, np.uint8)
    for i in range(N):
        m = sim[i]
        if shared:
            rgb = colorize_fixed(m, cmap, -1.0, 1.0, scale)
        else:
            lo, hi = float(m.min()), float(m.max())
            rgb = colorize_fixed(m, cmap, lo, hi if hi > lo else lo + 1, scale)
        r, c = divmod(i, gw)
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        out[y:y + th, x:x + tw] = rgb
    if highlight is not None and 0 <= highlight < N:
        r, c = divmod(highlight, gw)
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        pil = Image.fromarray(out)
        ImageDraw.Draw(pil).rectangle([x - 2, y - 2, x + tw + 1, y + th + 1], outline=(0, 0, 0), width=2)
        out = np.asarray(pil)
    return out, max(th, tw) + pad


def colorbar_image(cmap: str = "RdBu_r", vmin: float = -1.0, vmax: float = 1.0, width: int = 640,
                   height: int = 34, label: str = "cosine similarity", ticks: int = 5) -> np.ndarray:
    """A horizontal colour bar with tick labels, as an image to sit under a server-side mosaic."""
    fs = max(20, width // 22)  # shown at about half its size next to a plot: keep the labels big
    height = max(height, width // 18)
    margin = fs * 2
    canvas = Image.new("RGB", (width, height + fs * 3 + 8), (255, 255, 255))
    bar = colorize_fixed(np.linspace(vmin, vmax, width - 2 * margin)[None].repeat(height, 0), cmap, vmin, vmax)
    canvas.paste(Image.fromarray(bar), (margin, 0))
    d = ImageDraw.Draw(canvas)
    d.rectangle([margin - 1, 0, width - margin, height - 1], outline=(80, 80, 80))
    f = font(fs)
    for k in range(ticks):
        frac = k / (ticks - 1)
        x = margin + frac * (width - 2 * margin - 1)
        val = vmin + frac * (vmax - vmin)
        d.line([(x, height), (x, height + 6)], fill=(40, 40, 40), width=2)
        d.text((x, height + 8), f"{val:g}", fill=(20, 20, 20), font=f, anchor="mt")
    d.text((width / 2, height + 10 + fs * 1.3), label, fill=(20, 20, 20), font=f, anchor="mt")
    return np.asarray(canvas)


def _grid_cells(grid: tuple[int, int]) -> np.ndarray:
    gh, gw = grid
    r, c = np.divmod(np.arange(gh * gw), gw)
    return np.stack([r, c], 1)  # (N, 2)


def neighbour_vs_far(sim: np.ndarray, far: int = 5) -> dict:
    """Mean cosine similarity of grid neighbours (up, down, left, right) vs positions far apart.

    Args:
        sim: (N, gh, gw) similarity tiles (row i = similarity of position i to all).
        far: "far" means at least this many cells apart in row or column (Chebyshev distance).

    Returns:
        dict near, far (NaN when the grid has no such pairs), n_near, n_far, far_cells.
    """
    N, gh, gw = sim.shape
    S = sim.reshape(N, N)
    cells = _grid_cells((gh, gw))
    dr = np.abs(cells[:, None, 0] - cells[None, :, 0])
    dc = np.abs(cells[:, None, 1] - cells[None, :, 1])
    near = (dr + dc) == 1
    far_mask = np.maximum(dr, dc) >= far
    return dict(
        near=float(S[near].mean()) if near.any() else float("nan"),
        far=float(S[far_mask].mean()) if far_mask.any() else float("nan"),
        n_near=int(near.sum()) // 2, n_far=int(far_mask.sum()) // 2, far_cells=far,
    )


def row_column_similarity(sim: np.ndarray) -> dict:
    """Mean similarity to other positions in the same row, the same column, and everywhere else."""
    N, gh, gw = sim.shape
    S = sim.reshape(N, N)
    cells = _grid_cells((gh, gw))
    same_r = cells[:, None, 0] == cells[None, :, 0]
    same_c = cells[:, None, 1] == cells[None, :, 1]
    off = ~np.eye(N, dtype=bool)

    def mean(mask):
        return float(S[mask].mean()) if mask.any() else float("nan")

    return dict(row=mean(same_r & off), col=mean(same_c & off), other=mean(~same_r & ~same_c))


def similarity_by_distance(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean cosine similarity of two positions against their distance on the grid (Euclidean, cells)."""
    N, gh, gw = sim.shape
    S = sim.reshape(N, N)
    cells = _grid_cells((gh, gw))
    d2 = ((cells[:, None] - cells[None]) ** 2).sum(-1)  # (N, N) squared distances, integers
    off = ~np.eye(N, dtype=bool)
    keys = np.unique(d2[off])
    means = np.array([S[(d2 == k) & off].mean() for k in keys], np.float32)
    return np.sqrt(keys.astype(np.float32)), means


def resized_similarity(model: VisionTransformer, grid: tuple[int, int]) -> np.ndarray:
    """Position similarity after resampling the embeddings to a new grid (timm's bicubic
    resampling, as for a larger or smaller input): (N', gh', gw')."""
    with torch.no_grad():
        pos = model.resized_pos_embed(tuple(grid))[0]  # (T' or N', D)
        if not model.cfg.no_embed_class:
            pos = pos[model.num_prefix_tokens:]  # (N', D)
        return analysis.position_similarity(pos.float().cpu(), tuple(grid)).numpy()


def map_patch(index: int, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> int:
    """The patch of a new grid whose centre lies closest to the centre of `index` in the old grid."""
    gh, gw = old_grid
    nh, nw = new_grid
    r, c = divmod(int(index), gw)

    def nearest(k: int, old: int, new: int) -> int:
        x = (k + 0.5) * new / old  # the old centre in new-cell units; new cell j spans (j, j + 1]
        return min(new - 1, max(0, math.ceil(x - 1.0)))  # a centre on a border goes to the lower cell

    return nearest(r, gh, nh) * nw + nearest(c, gw, nw)


def input_size_options(img_size: int, patch: int, lo_frac: float = 0.5, hi_frac: float = 2.0) -> list[int]:
    """Input sizes (multiples of P) from about half to twice the training size, at least 2 patches."""
    sizes = sorted({patch * g for g in range(2, 10_000)
                    if lo_frac * img_size <= patch * g <= hi_frac * img_size})
    if img_size not in sizes:
        sizes = sorted(set(sizes) | {img_size})
    # keep the list short enough for a slider: about 16 stops
    if len(sizes) > 17:
        step = math.ceil(len(sizes) / 16)
        keep = set(sizes[::step]) | {img_size, sizes[-1]}
        sizes = sorted(keep)
    return sizes


# --------------------------------------------------------------------------------------------
# Plotly helpers shared by the three pages
# --------------------------------------------------------------------------------------------


def legible(fig, size: int = 18):
    """Projector-sized fonts on a plotly figure: titles, axis titles, ticks, legend, colour bar.

    Streamlit's chart theme replaces the layout-wide font, so sizes are set on each part too.
    """
    fig.update_layout(font=dict(size=size), title_font=dict(size=size + 2), legend_font=dict(size=size - 2),
                      hoverlabel=dict(font_size=size - 2))
    fig.update_xaxes(tickfont=dict(size=size - 2), title_font=dict(size=size))
    fig.update_yaxes(tickfont=dict(size=size - 2), title_font=dict(size=size))
    for tr in fig.data:
        if hasattr(tr, "colorbar") and tr.type in ("heatmap", "contour"):
            tr.colorbar.tickfont = dict(size=size - 2)
            tr.colorbar.title.font = dict(size=size - 2)
    return fig


def mosaic_picker(mosaic: np.ndarray, grid: tuple[int, int], pitch: int, pad: int = 2,
                  selected: int | None = None, height: int = 560):
    """A server-side tile mosaic as a plotly image with one invisible, clickable marker per tile.

    Like figures.patch_picker, but the markers are transparent so the tiles keep their colours;
    hovering names the position. Selection events carry the tile index as customdata.
    """
    import plotly.graph_objects as go

    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    tile = pitch - pad
    fig = go.Figure(go.Image(z=mosaic, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=pad + cols * pitch + tile / 2, y=pad + rows * pitch + tile / 2, mode="markers",
        marker=dict(size=max(6, int(height / max(gh, gw) * 0.8)), symbol="square",
                    color="rgba(0,0,0,0.01)", line=dict(width=0)),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        customdata=np.arange(gh * gw), hovertemplate="position %{customdata}<extra></extra>",
    ))
    if selected is not None:
        r, c = divmod(int(selected), gw)
        x0, y0 = pad + c * pitch, pad + r * pitch
        fig.add_shape(type="rect", x0=x0 - 2, y0=y0 - 2, x1=x0 + tile + 1, y1=y0 + tile + 1,
                      line=dict(color="black", width=3))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), showlegend=False,
                      dragmode=False, clickmode="event+select")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
