"""Server-side pictures with text on them: labelled tiles and mosaics, numbered grids, colour bars.

Drawn with PIL in DejaVu Sans (ships with matplotlib) at projector sizes and returned as
(H, W, 3) uint8 arrays for st.image and the PNG download buttons. Unlabelled building blocks
(colour maps, overlays, grid lines, plain mosaics) are in ``vit_core.render.figures``.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vit_core.render import figures
from vit_core.analysis.patches import patch_tiles


@lru_cache(maxsize=8)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (ships with matplotlib) at a projector-friendly size."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default(size=size)


# --- tiles with labels -------------------------------------------------------------------------


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


def labelled_mosaic(tiles: np.ndarray, row_label: str = "L", col_label: str = "H",
                    font_size: int = 22, pad: int = 3, row_names: list[str] | None = None) -> np.ndarray:
    """Tiles (R, C, h, w, 3) uint8 on a grid, rows labelled L1.. (or row_names), columns H1.."""
    R, C, h, w = tiles.shape[:4]
    f = font(font_size)
    rows = row_names or [f"{row_label}{r + 1}" for r in range(R)]
    left, top = int(font_size * (0.8 + 0.65 * max(len(t) for t in rows))), int(font_size * 1.6)
    body = figures.mosaic(tiles.reshape(R * C, h, w, 3), C, pad=pad)  # (R, C, h, w, 3) -> (R*C, h, w, 3)
    out = Image.new("RGB", (left + body.shape[1], top + body.shape[0]), "white")
    out.paste(Image.fromarray(body), (left, top))
    d = ImageDraw.Draw(out)
    for c in range(C):
        d.text((left + pad + c * (w + pad) + w / 2, top / 2), f"{col_label}{c + 1}", fill="black", font=f, anchor="mm")
    for r in range(R):
        d.text((left - 6, top + pad + r * (h + pad) + h / 2), rows[r], fill="black", font=f, anchor="rm")
    return np.asarray(out)


def overlay_tiles(image: np.ndarray, maps: np.ndarray, cmap: str, alpha: float, tile: int = 72) -> np.ndarray:
    """Each map (..., gh, gw) blended on a thumbnail of the image: (..., tile, tile, 3)."""
    thumb = np.asarray(Image.fromarray(image).resize((tile, tile), Image.BILINEAR))
    flat = maps.reshape(-1, *maps.shape[-2:])  # (..., gh, gw) -> (M, gh, gw)
    out = np.stack([figures.overlay(thumb, m, cmap, alpha) for m in flat])
    return out.reshape(*maps.shape[:-2], tile, tile, 3)  # (M, tile, tile, 3) -> (..., tile, tile, 3)


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


def channel_planes(image_patch: np.ndarray, tile_px: int = 160) -> np.ndarray:
    """One RGB patch (P, P, 3) uint8, then its red, green and blue planes, side by side, enlarged."""
    planes = [image_patch]
    for ch in range(3):
        p = np.zeros_like(image_patch)
        p[..., ch] = image_patch[..., ch]
        planes.append(p)
    return labelled_tiles(np.stack(planes), ["patch", "R", "G", "B"], cols=4, tile_px=tile_px, font_size=26)


def pcs_mosaic(pcs: np.ndarray, cols: int = 7, tile_px: int = 84, var: np.ndarray | None = None) -> np.ndarray:
    """Filter principal components (k, P, P, C) in [0, 1] -> labelled RGB tiles (paper Fig 7 left)."""
    tiles = (np.clip(pcs, 0, 1) * 255).round().astype(np.uint8)
    if tiles.shape[-1] == 1:
        tiles = tiles.repeat(3, -1)
    labels = [f"{i + 1}" + (f": {var[i]:.1%}" if var is not None else "") for i in range(len(tiles))]
    return labelled_tiles(tiles, labels, cols=cols, tile_px=tile_px, font_size=17)


# --- the image with its grid -------------------------------------------------------------------


def numbered_grid(image: np.ndarray, patch: int, scale: int, highlight_first: int = 0,
                  font_size: int = 0) -> np.ndarray:
    """The image enlarged with its patch grid and each patch's index (reading order) written in it.

    `highlight_first` tints the first patches (those shown in the sequence strip).
    """
    big = figures.upscale(image, scale)
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
    figures.grid_lines(d, gw * cell, gh * cell, cell, line=2)
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
    pil = Image.fromarray(figures.upscale(image, scale)).convert("RGB")
    cell = patch * scale
    gh, gw = h // patch, w // patch
    figures.grid_lines(ImageDraw.Draw(pil), gw * cell, gh * cell, cell, line=1 if cell < 10 else 2)
    return np.asarray(pil)


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


# --- position similarity ------------------------------------------------------------------------


def similarity_mosaic(sim: np.ndarray, cmap: str = "RdBu_r", shared: bool = True, tile: int = 56,
                      pad: int = 2, highlight: int | None = None) -> tuple[np.ndarray, int]:
    """All N similarity tiles (N, gh, gw) on the gh x gw grid (paper Fig 7 centre).

    shared=True colours every tile on one scale -1..1; False stretches each tile to its own
    min..max. Returns the mosaic and the pitch in pixels between tile origins (tile + pad).
    """
    N, gh, gw = sim.shape
    scale = max(1, tile // max(gh, gw))
    th, tw = gh * scale, gw * scale
    tiles = []
    for m in sim:
        lo, hi = (-1.0, 1.0) if shared else (float(m.min()), float(m.max()))
        tiles.append(figures.colorize_fixed(m, cmap, lo, hi if hi > lo else lo + 1, scale))
    out = figures.mosaic(np.stack(tiles), gw, pad=pad)
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
    ramp = np.linspace(vmin, vmax, width - 2 * margin)[None].repeat(height, 0)  # (height, bar width)
    canvas.paste(Image.fromarray(figures.colorize_fixed(ramp, cmap, vmin, vmax)), (margin, 0))
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
