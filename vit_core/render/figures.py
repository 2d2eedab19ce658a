"""Figures for the pages: colour maps, overlays, grids and mosaics (numpy / PIL) and plotly charts.

Heatmaps are blended onto the image here rather than shipped to the browser as raw attention
(a ViT-B/16 attention stack is 22 MB). Fonts and line widths are sized for a projector: every
plotly builder takes ``font_size`` and builds its figure in one constructor call with a
``style.layout(...)`` dict. The pages' own charts are in ``charts`` and ``lecture_charts``;
pictures with text on them (labels need a font) live in ``vit_core.render.drawing``.
"""
from __future__ import annotations

import base64
import io
from collections.abc import MutableMapping

import matplotlib
import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

# Re-exported: pages and other render modules reach the chart style through ``figures`` too.
from vit_core.render.style import (FONT, FONT_SIZE, INK, axis, colorbar, font, layout, legible,  # noqa: F401
                                   log_ticks, safe_colorscale, unchecked)

# Colour maps that keep their order when a beamer washes out the mid-tones.
CMAPS = ("inferno", "viridis", "magma", "cividis", "turbo")


def to_png(img: np.ndarray | Image.Image) -> bytes:
    """PNG bytes of an image array (H, W, 3) uint8 or a PIL image, for download buttons."""
    pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def to_jpeg(img: np.ndarray, width: int | None = None, quality: int = 92) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 image, resized (Lanczos) to ``width`` px if given.

    For images shown at a fixed width: bytes already at that width and in that format are passed
    through by Streamlit untouched, instead of being decoded, resized and re-encoded on each rerun.
    """
    pil = Image.fromarray(img)
    if width is not None and width != pil.width:
        pil = pil.resize((width, max(1, round(pil.height * width / pil.width))), Image.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes, read from the header alone."""
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def data_uri(img: np.ndarray | bytes) -> str:
    """A ``data:`` URI of JPEG or PNG bytes (told apart by their signature), or of an (H, W, 3) uint8
    image encoded as JPEG: for ``go.Image(source=...)``, ``st.image`` and HTML.

    Shipping ``z`` to plotly instead makes it validate and serialise every pixel as JSON numbers
    (~70 ms and ~1 MB for 224 x 224); a JPEG source is ~2 ms and ~30 kB.
    """
    data = img if isinstance(img, bytes) else to_jpeg(img)
    mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(data).decode()


# --- colour ----------------------------------------------------------------------------------


def normalise(m: np.ndarray) -> np.ndarray:
    """Stretch an array to 0..1 by its own minimum and maximum (all zeros when it is constant)."""
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m, dtype=np.float32)


def clip_limit(z: np.ndarray, percentile: float = 99) -> float:
    """A symmetric colour-scale limit: the given percentile of |z| (1 when that is 0), so that a
    few large values do not wash out the rest."""
    return float(np.percentile(np.abs(z), percentile)) or 1.0


def _cmap_rgb(x: np.ndarray, cmap: str) -> np.ndarray:
    """Values in 0..1 -> (..., 3) uint8 through a matplotlib colour map."""
    return (matplotlib.colormaps[cmap](x)[..., :3] * 255).astype(np.uint8)


def colorize(m: np.ndarray, cmap: str = "inferno", size: tuple[int, int] | None = None,
             smooth: bool = False) -> np.ndarray:
    """A 2-D map -> (H, W, 3) uint8 on its own scale (min..max), optionally resized to `size` (h, w)."""
    rgb = _cmap_rgb(normalise(np.asarray(m, np.float32)), cmap)
    if size is not None:
        resample = Image.BICUBIC if smooth else Image.NEAREST
        rgb = np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), resample))
    return rgb


def colorize_fixed(m: np.ndarray, cmap: str = "RdBu_r", vmin: float = -1.0, vmax: float = 1.0,
                   scale: int = 1) -> np.ndarray:
    """A 2-D map -> (H, W, 3) uint8 on a FIXED colour scale [vmin, vmax] (so tiles compare)."""
    x = (np.asarray(m, np.float32) - vmin) / max(vmax - vmin, 1e-12)
    return upscale(_cmap_rgb(np.clip(x, 0, 1), cmap), scale)


def overlay(image: np.ndarray, heat: np.ndarray, cmap: str = "inferno", alpha: float = 0.6,
            smooth: bool = True) -> np.ndarray:
    """Blend a (gh, gw) map onto the image (H, W, 3) uint8; alpha is the map's opacity."""
    h, w = image.shape[:2]
    col = colorize(heat, cmap, size=(h, w), smooth=smooth).astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * col
    return out.clip(0, 255).astype(np.uint8)


# --- images: size, grid lines, mosaics ---------------------------------------------------------


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so small images stay crisp on a projector."""
    return image.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else image


def upscale_to(image: np.ndarray, target: int = 448) -> np.ndarray:
    """Enlarge a small model input by a whole factor to about `target` px (nearest neighbour)."""
    return upscale(image, max(1, target // max(image.shape[:2])))


def grid_lines(draw: ImageDraw.ImageDraw, width: int, height: int, cell: int, color=(255, 255, 255),
               line: int = 1) -> None:
    """Draw the lines of a grid of `cell` px squares over a width x height area from the top left."""
    for x in range(0, width + 1, cell):
        draw.line([(x, 0), (x, height)], fill=color, width=line)
    for y in range(0, height + 1, cell):
        draw.line([(0, y), (width, y)], fill=color, width=line)


def draw_grid(image: np.ndarray, patch: int, highlight: int | None = None, color=(255, 255, 255),
              width: int = 1) -> np.ndarray:
    """The image with the patch grid drawn on it; `highlight` outlines one patch (row-major index)."""
    pil = Image.fromarray(image).convert("RGB")
    d = ImageDraw.Draw(pil)
    h, w = image.shape[:2]
    grid_lines(d, w, h, patch, color, width)
    if highlight is not None:
        gw = w // patch
        r, c = divmod(highlight, gw)
        d.rectangle([c * patch, r * patch, (c + 1) * patch, (r + 1) * patch], outline=(0, 255, 255), width=3)
    return np.asarray(pil)


def outline_cell(image: np.ndarray, index: int, gw: int, cell: int, color=(0, 255, 255),
                 width: int = 4) -> np.ndarray:
    """The image with grid cell ``index`` (row-major on a grid ``gw`` cells wide, ``cell`` px each)
    outlined, nothing else changed (the query patch on an attention map)."""
    pil = Image.fromarray(image).convert("RGB")
    r, c = divmod(int(index), gw)
    ImageDraw.Draw(pil).rectangle([c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1], outline=color,
                                  width=width)
    return np.asarray(pil)


def mosaic(tiles: np.ndarray, cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Lay out tiles (n, h, w, 3) uint8 on a grid with `cols` columns and a white gap."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), fill, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = tiles[i]
    return out


def map_mosaic(maps: np.ndarray, cols: int, cmap: str = "viridis", tile: int = 64) -> np.ndarray:
    """Each (gh, gw) map colourised (own scale) and enlarged to about `tile` px, on a grid."""
    gh, gw = maps.shape[-2:]
    scale = max(1, tile // max(gh, gw))
    tiles = np.stack([colorize(m, cmap, size=(gh * scale, gw * scale)) for m in maps])
    return mosaic(tiles, cols)


# --- plotly: pickers and the shared charts (sizes and fonts from ``style``) ----------------------


def _picker(image: np.ndarray | bytes, x: np.ndarray, y: np.ndarray, marker: dict, hover: str, height: int,
            box: tuple[float, float, float, float] | None, box_line: dict, font_size: int,
            **scatter) -> go.Figure:
    """An image with one clickable marker per (x, y); selection events carry the marker's index."""
    shapes = [] if box is None else [dict(type="rect", x0=box[0], y0=box[1], x1=box[2], y1=box[3],
                                          line=box_line)]
    return go.Figure(
        data=[go.Image(source=data_uri(image), hoverinfo="skip"),
              go.Scatter(x=x, y=y, mode="markers", marker=marker, customdata=np.arange(len(x)),
                         hovertemplate=hover + " %{customdata}<extra></extra>", **scatter)],
        layout=layout(font_size, height=height, grow=False, margin=dict(l=0, r=0, t=0, b=0), showlegend=False,
                      dragmode=False, clickmode="event+select", xaxis=dict(visible=False),
                      yaxis=dict(visible=False), shapes=shapes))


def patch_picker(image: np.ndarray, grid: tuple[int, int], patch: int, selected: int | None = None,
                 height: int = 560, font_size: int = FONT_SIZE) -> go.Figure:
    """The image with one clickable marker per patch centre (plotly selection gives its index)."""
    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    box = None
    if selected is not None:
        r, c = divmod(selected, gw)
        box = (c * patch, r * patch, (c + 1) * patch, (r + 1) * patch)
    marker = dict(size=max(6, int(height / max(gh, gw) * 0.55)), color="rgba(255,255,255,0.12)",
                  line=dict(width=1, color="rgba(255,255,255,0.5)"), symbol="square")
    return _picker(image, cols * patch + patch / 2, rows * patch + patch / 2, marker, "patch", height,
                   box, dict(color="cyan", width=4), font_size)


def mosaic_picker(mosaic: np.ndarray | bytes, grid: tuple[int, int], pitch: int, pad: int = 2,
                  selected: int | None = None, height: int = 560, font_size: int = FONT_SIZE) -> go.Figure:
    """A server-side tile mosaic (an array, or its JPEG bytes) as a plotly image with one invisible,
    clickable marker per tile.

    Like patch_picker, but the markers are transparent so the tiles keep their colours;
    hovering names the position. Selection events carry the tile index as customdata.
    """
    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    tile = pitch - pad
    box = None
    if selected is not None:
        r, c = divmod(int(selected), gw)
        x0, y0 = pad + c * pitch, pad + r * pitch
        box = (x0 - 2, y0 - 2, x0 + tile + 1, y0 + tile + 1)
    marker = dict(size=max(6, int(height / max(gh, gw) * 0.8)), symbol="square",
                  color="rgba(0,0,0,0.01)", line=dict(width=0))
    # full opacity either way: plotly would otherwise dim the tiles that are not selected
    return _picker(mosaic, pad + cols * pitch + tile / 2, pad + rows * pitch + tile / 2, marker, "position",
                   height, box, dict(color="black", width=3), font_size,
                   selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)))


def selected_point(event) -> int | None:
    """The patch index a plotly_chart selection event picked, if any."""
    try:
        points = event.selection.points
    except AttributeError:
        return None
    for p in points:
        if p.get("customdata") is not None:
            cd = p["customdata"]
            return int(cd[0] if isinstance(cd, (list, tuple)) else cd)
    return None


def store_pick(state: MutableMapping, chart_key: str, target_key: str, count: int, offset: int = 0) -> None:
    """Copy the index clicked in a picker chart into a widget's state (on_select callbacks).

    Args:
        state: the session state (any mapping) holding the chart's selection event.
        chart_key: key of the plotly chart (patch_picker or mosaic_picker).
        target_key: key of the widget that shows the choice (a slider).
        count: number of markers; other indices are ignored.
        offset: added to the index, e.g. the prefix tokens before the first patch.
    """
    idx = selected_point(state.get(chart_key))
    if idx is not None and 0 <= idx < count:
        state[target_key] = offset + idx


def bar_chart(names: list[str], values: np.ndarray, title: str = "", xlabel: str = "probability",
              font_size: int = FONT_SIZE) -> go.Figure:
    """Horizontal bars, largest on top, with values printed (top-k classes)."""
    v = np.asarray(values, dtype=float)[::-1]
    # unchecked: the What if? page rebuilds this chart on every click (tests validate it)
    return unchecked(
        [dict(type="bar", x=v.tolist(), y=list(names)[::-1], orientation="h", marker=dict(color="#c2410c"),
              cliponaxis=False, text=[f"{x:.1%}" for x in v], textposition="outside", textfont=font(font_size))],
        layout(font_size, title, height=80 + 48 * len(names), margin=dict(l=10, r=40, t=2 * font_size + 18, b=40),
               xaxis=dict(title=xlabel, range=[0, max(1e-9, float(v.max(initial=0))) * 1.25])))


def heatmap(z: np.ndarray, x=None, y=None, title: str = "", colorscale: str = "Inferno",
            xlabel: str = "", ylabel: str = "", height: int = 520, zmin=None, zmax=None,
            font_size: int = FONT_SIZE, texttemplate: str | None = None,
            outline_row: int | None = None) -> go.Figure:
    """A matrix as a heatmap, first row on top (as it is printed).

    ``texttemplate`` prints each value in its cell (e.g. "%{z:.0%}"); ``outline_row`` draws a
    black frame around one row.
    """
    shapes = [] if outline_row is None else [dict(
        type="rect", x0=-0.5, x1=np.shape(z)[1] - 0.5, y0=outline_row - 0.5, y1=outline_row + 0.5,
        line=dict(color="black", width=3))]
    return go.Figure(
        # cell labels: size only, so that plotly draws them white on dark cells and black on light ones
        data=[go.Heatmap(z=z, x=x, y=y, colorscale=safe_colorscale(colorscale), zmin=zmin, zmax=zmax,
                         colorbar=colorbar(font_size),
                         texttemplate=texttemplate, textfont=dict(size=font_size))],
        layout=layout(font_size, title, height=height, xaxis=dict(title=xlabel),
                       yaxis=dict(title=ylabel, autorange="reversed"), shapes=shapes))


def distance_scatter(distance: np.ndarray, title: str = "Mean attention distance",
                     font_size: int = FONT_SIZE) -> go.Figure:
    """Paper Fig 7 right: x = layer, y = distance in pixels from 0, one point and colour per head."""
    L, h = distance.shape
    # tab10/tab20 keep neighbouring heads apart; plotly's default cycle repeats after 10
    palette = matplotlib.colormaps["tab20" if h > 10 else "tab10"].colors
    rgb = [tuple(int(255 * c) for c in palette[head % len(palette)][:3]) for head in range(h)]
    return go.Figure(
        data=[go.Scatter(x=np.arange(1, L + 1), y=distance[:, head], mode="markers", name=f"head {head + 1}",
                         marker=dict(size=12, color="rgb({},{},{})".format(*rgb[head]))) for head in range(h)],
        layout=layout(font_size, title, height=480, margin=dict(l=10, r=10, t=2 * font_size + 28, b=10),
                       xaxis=dict(title="layer (network depth)", dtick=1),
                       yaxis=dict(title="mean attention distance (pixels)",
                                  range=[0, float(distance.max()) * 1.1 + 1e-6])))


def vector_bars(vectors: dict[str, np.ndarray], title: str, height: int = 380,
                font_size: int = FONT_SIZE) -> go.Figure:
    """Grouped bars of a few same-length vectors over their dimensions (q, k, v, outputs)."""
    return go.Figure(
        data=[go.Bar(x=np.arange(len(vec)), y=vec, name=name) for name, vec in vectors.items()],
        layout=layout(font_size, dict(text=title, y=0.97, yanchor="top"), height=height, barmode="group",
                       bargap=0.15, margin=dict(l=10, r=10, t=4 * font_size + 36, b=10),
                       xaxis=dict(title="dimension of the head"),
                       legend=dict(orientation="h", y=1.0, x=0, xanchor="left", yanchor="bottom")))
