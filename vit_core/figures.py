"""Figures for the pages: server-side rendered images (numpy/PNG) and plotly charts.

Heatmaps are blended onto the image here rather than shipped to the browser as raw attention
(a ViT-B/16 attention stack is 22 MB). Fonts and line widths are sized for a projector.
"""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

FONT = dict(size=18)
# Colour maps that keep their order when a beamer washes out the mid-tones.
CMAPS = ("inferno", "viridis", "magma", "cividis", "turbo")


def to_png(img: np.ndarray | Image.Image) -> bytes:
    """PNG bytes of an image array (H, W, 3) uint8 or a PIL image, for download buttons."""
    pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def normalise(m: np.ndarray) -> np.ndarray:
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m, dtype=np.float32)


def colorize(m: np.ndarray, cmap: str = "inferno", size: tuple[int, int] | None = None,
             smooth: bool = False) -> np.ndarray:
    """A 2-D map -> (H, W, 3) uint8 through a matplotlib colour map, optionally upsampled."""
    rgb = (matplotlib.colormaps[cmap](normalise(np.asarray(m, np.float32)))[..., :3] * 255).astype(np.uint8)
    if size is not None:
        resample = Image.BICUBIC if smooth else Image.NEAREST
        rgb = np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), resample))
    return rgb


def overlay(image: np.ndarray, heat: np.ndarray, cmap: str = "inferno", alpha: float = 0.6,
            smooth: bool = True) -> np.ndarray:
    """Blend a (gh, gw) map onto the image (H, W, 3) uint8; alpha is the map's opacity."""
    h, w = image.shape[:2]
    col = colorize(heat, cmap, size=(h, w), smooth=smooth).astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * col
    return out.clip(0, 255).astype(np.uint8)


def draw_grid(image: np.ndarray, patch: int, highlight: int | None = None, color=(255, 255, 255),
              width: int = 1) -> np.ndarray:
    """The image with the patch grid drawn on it; `highlight` outlines one patch (row-major index)."""
    pil = Image.fromarray(image).convert("RGB")
    d = ImageDraw.Draw(pil)
    h, w = image.shape[:2]
    for x in range(0, w + 1, patch):
        d.line([(x, 0), (x, h)], fill=color, width=width)
    for y in range(0, h + 1, patch):
        d.line([(0, y), (w, y)], fill=color, width=width)
    if highlight is not None:
        gw = w // patch
        r, c = divmod(highlight, gw)
        d.rectangle([c * patch, r * patch, (c + 1) * patch, (r + 1) * patch], outline=(0, 255, 255), width=3)
    return np.asarray(pil)


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so small images stay crisp on a projector."""
    return image.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else image


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


def patch_picker(image: np.ndarray, grid: tuple[int, int], patch: int, selected: int | None = None,
                 height: int = 560) -> go.Figure:
    """The image with one clickable marker per patch centre (plotly selection gives its index)."""
    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    fig = go.Figure(go.Image(z=image, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=cols * patch + patch / 2, y=rows * patch + patch / 2, mode="markers",
        marker=dict(size=max(6, int(height / max(gh, gw) * 0.55)), color="rgba(255,255,255,0.12)",
                    line=dict(width=1, color="rgba(255,255,255,0.5)"), symbol="square"),
        customdata=np.arange(gh * gw), hovertemplate="patch %{customdata}<extra></extra>",
    ))
    if selected is not None:
        r, c = divmod(selected, gw)
        fig.add_shape(type="rect", x0=c * patch, y0=r * patch, x1=(c + 1) * patch, y1=(r + 1) * patch,
                      line=dict(color="cyan", width=4))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=0, b=0), showlegend=False,
                      font=FONT, dragmode=False, clickmode="event+select")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


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


def bar_chart(names: list[str], values: np.ndarray, title: str = "", xlabel: str = "probability") -> go.Figure:
    """Horizontal bars, largest on top, with values printed (top-k classes)."""
    fig = go.Figure(go.Bar(x=values[::-1], y=names[::-1], orientation="h", marker_color="#c2410c",
                           text=[f"{v:.1%}" for v in values[::-1]], textposition="outside"))
    fig.update_layout(title=title, font=FONT, height=80 + 48 * len(names), margin=dict(l=10, r=40, t=50, b=40),
                      xaxis=dict(title=xlabel, range=[0, max(1e-9, float(values.max())) * 1.25]))
    return fig


def heatmap(z: np.ndarray, x=None, y=None, title: str = "", colorscale: str = "Inferno",
            xlabel: str = "", ylabel: str = "", height: int = 520, zmin=None, zmax=None) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=z, x=x, y=y, colorscale=colorscale, zmin=zmin, zmax=zmax))
    fig.update_layout(title=title, font=FONT, height=height, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis_title=xlabel, yaxis_title=ylabel)
    fig.update_yaxes(autorange="reversed")
    return fig


def distance_scatter(distance: np.ndarray, title: str = "Mean attention distance") -> go.Figure:
    """Paper Fig 7 right: x = layer, y = distance in pixels, one point per head."""
    L, h = distance.shape
    fig = go.Figure()
    for head in range(h):
        fig.add_trace(go.Scatter(x=np.arange(1, L + 1), y=distance[:, head], mode="markers",
                                 name=f"head {head + 1}", marker=dict(size=12)))
    fig.update_layout(title=title, font=FONT, height=480, xaxis_title="layer (network depth)",
                      yaxis_title="mean attention distance (pixels)", margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(dtick=1)
    return fig
