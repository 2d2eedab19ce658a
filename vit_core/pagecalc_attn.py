"""Small pure computations and figures for the self-attention, attention-map and prediction pages.

Everything takes the cached ``explain.Analysis`` (numpy arrays) and returns numpy arrays, numbers
or figures; nothing here imports Streamlit. Definitions follow ALGORITHMS.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw, ImageFont

from vit_core import analysis, figures
from vit_core.explain import Analysis

FUSIONS = ("mean", "max", "min")


def token_label(a: Analysis, t: int) -> str:
    """Human name of token t: [CLS], a register, or a patch with its grid row and column (1-based)."""
    n = a.num_prefix_tokens
    if t < n:
        return "[CLS]" if t == 0 else f"register {t}"
    r, c = divmod(t - n, a.grid[1])
    return f"patch {t - n} (row {r + 1}, col {c + 1})"


@dataclass(frozen=True)
class AttentionStep:
    """softmax(q K^T / sqrt(d)) V for one layer, head and query token, recomputed from q, k, v."""

    q: np.ndarray  # (hd,) the query vector
    k: np.ndarray  # (T, hd) every key
    scores: np.ndarray  # (T,) q . k_j / sqrt(hd)
    weights: np.ndarray  # (T,) softmax of the scores, recomputed here
    stored: np.ndarray  # (T,) the model's own attention row a.attn[layer, head, query]
    softmax_diff: float  # max |weights - stored|
    out: np.ndarray  # (hd,) sum_j weights_j v_j
    out_ref: np.ndarray  # (hd,) (a.attn @ a.v)[layer, head, query]
    out_diff: float  # max |out - out_ref|
    best_key: int  # the key with the highest score


def attention_step(a: Analysis, layer: int, head: int, query: int) -> AttentionStep:
    """Recompute one attention row from the model's real q, k, v (layer, head 0-based)."""
    q = a.q[layer, head, query].astype(np.float64)  # (hd,)
    k = a.k[layer, head].astype(np.float64)  # (T, hd)
    v = a.v[layer, head].astype(np.float64)  # (T, hd)
    scores = k @ q / np.sqrt(q.shape[0])  # (T,)
    e = np.exp(scores - scores.max())
    weights = e / e.sum()  # (T,)
    stored = a.attn[layer, head, query]  # (T,)
    out = weights @ v  # (hd,)
    out_ref = a.attn[layer, head, query] @ a.v[layer, head]  # (hd,), float32 as the model did
    return AttentionStep(
        q=q, k=k, scores=scores, weights=weights, stored=stored,
        softmax_diff=float(np.abs(weights - stored).max()), out=out, out_ref=out_ref,
        out_diff=float(np.abs(out - out_ref).max()), best_key=int(scores.argmax()),
    )


@dataclass(frozen=True)
class TokenCost:
    patches: int  # N = (S/P)^2
    tokens: int  # T = N + prefix
    entries: int  # T^2 attention scores per head and layer
    pixel_tokens: int  # C*S*S: every pixel value a token
    pixel_entries: int  # (C*S*S)^2
    ratio: float  # pixel_entries / entries


def token_cost(image_size: int, patch_size: int, channels: int = 3, prefix: int = 1) -> TokenCost:
    """Attention size for patches vs. every pixel value as a token (ViT-B/16: 197^2 = 38,809)."""
    n = (image_size // patch_size) ** 2
    t = n + prefix
    pix = channels * image_size * image_size
    return TokenCost(n, t, t * t, pix, pix * pix, pix * pix / (t * t))


def cls_maps(a: Analysis) -> np.ndarray:
    """[CLS] attention over the patches for every layer and head: (L, h, gh, gw)."""
    attn = torch.from_numpy(a.attn)
    return np.stack([analysis.cls_attention(attn[l], a.grid, a.num_prefix_tokens).numpy()
                     for l in range(a.depth)])


def query_maps(a: Analysis, layer: int, query: int) -> np.ndarray:
    """Where token `query` looks in `layer` (0-based): (h, gh, gw), one map per head."""
    return analysis.query_attention(torch.from_numpy(a.attn[layer]), query, a.grid, a.num_prefix_tokens).numpy()


def fuse(maps: np.ndarray, how: str) -> np.ndarray:
    """Combine per-head maps (h, ...) by mean, max or min."""
    return {"mean": maps.mean(0), "max": maps.max(0), "min": maps.min(0)}[how]


def distances(a: Analysis, renormalize: bool) -> np.ndarray:
    """Mean attention distance (L, h) in pixels for this image; renormalize after dropping [CLS]."""
    if not renormalize:
        return a.distance
    return analysis.mean_attention_distance(torch.from_numpy(a.attn), a.grid, a.patch_size,
                                            num_prefix_tokens=a.num_prefix_tokens, renormalize=True).numpy()


def _font(size: int) -> ImageFont.FreeTypeFont:
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), size)


def labelled_mosaic(tiles: np.ndarray, row_label: str = "L", col_label: str = "H",
                    font_size: int = 22, pad: int = 3, row_names: list[str] | None = None) -> np.ndarray:
    """Tiles (R, C, h, w, 3) uint8 on a grid, rows labelled L1.. (or row_names), columns H1.."""
    R, C, h, w = tiles.shape[:4]
    font = _font(font_size)
    rows = row_names or [f"{row_label}{r + 1}" for r in range(R)]
    left, top = int(font_size * (0.8 + 0.65 * max(len(t) for t in rows))), int(font_size * 1.6)
    body = figures.mosaic(tiles.reshape(R * C, h, w, 3), C, pad=pad)
    out = Image.new("RGB", (left + body.shape[1], top + body.shape[0]), "white")
    out.paste(Image.fromarray(body), (left, top))
    d = ImageDraw.Draw(out)
    for c in range(C):
        d.text((left + pad + c * (w + pad) + w / 2, top / 2), f"{col_label}{c + 1}", fill="black", font=font, anchor="mm")
    for r in range(R):
        d.text((left - 6, top + pad + r * (h + pad) + h / 2), rows[r], fill="black", font=font, anchor="rm")
    return np.asarray(out)


def overlay_tiles(image: np.ndarray, maps: np.ndarray, cmap: str, alpha: float, tile: int = 72) -> np.ndarray:
    """Each map (..., gh, gw) blended on a thumbnail of the image: (..., tile, tile, 3)."""
    thumb = np.asarray(Image.fromarray(image).resize((tile, tile), Image.BILINEAR))
    flat = maps.reshape(-1, *maps.shape[-2:])
    out = np.stack([figures.overlay(thumb, m, cmap, alpha) for m in flat])
    return out.reshape(*maps.shape[:-2], tile, tile, 3)


def big(image: np.ndarray, target: int = 448) -> np.ndarray:
    """Enlarge a small model input (nearest neighbour) so overlays stay crisp on a projector."""
    return figures.upscale(image, max(1, target // max(image.shape[:2])))


def legible(fig: go.Figure, size: int = 18) -> go.Figure:
    """Projector-sized text that survives Streamlit's chart theme (it overrides layout.font only)."""
    fig.update_layout(title_font_size=size + 4, legend_font_size=size, hoverlabel_font_size=size)
    fig.update_xaxes(tickfont_size=size - 2, title_font_size=size)
    fig.update_yaxes(tickfont_size=size - 2, title_font_size=size)
    fig.update_traces(textfont_size=size - 2, selector=lambda t: "textfont" in t)
    fig.update_traces(colorbar_tickfont_size=size - 2, selector=dict(type="heatmap"))
    return fig


def distance_figure(dist: np.ndarray, title: str) -> go.Figure:
    """figures.distance_scatter with the y axis from 0 and one clearly distinct colour per head."""
    fig = figures.distance_scatter(dist, title)
    palette = matplotlib.colormaps["tab20" if dist.shape[1] > 10 else "tab10"].colors
    for i, tr in enumerate(fig.data):
        r, g, b = (int(255 * c) for c in palette[i % len(palette)][:3])
        tr.marker.color = f"rgb({r},{g},{b})"
    fig.update_yaxes(range=[0, float(dist.max()) * 1.1 + 1e-6])
    return legible(fig)


def vector_bars(vectors: dict[str, np.ndarray], title: str, height: int = 380) -> go.Figure:
    """Grouped bars of a few same-length vectors over their dimensions (q, k, v, outputs)."""
    fig = go.Figure()
    for name, vec in vectors.items():
        fig.add_trace(go.Bar(x=np.arange(len(vec)), y=vec, name=name))
    fig.update_layout(title=dict(text=title, y=0.97, yanchor="top"), font=figures.FONT, height=height,
                      barmode="group", bargap=0.15, margin=dict(l=10, r=10, t=100, b=10),
                      xaxis_title="dimension of the head",
                      legend=dict(orientation="h", y=1.0, x=0, xanchor="left", yanchor="bottom"))
    return legible(fig)


def lens_table(a: Analysis, class_names: list[str], classes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Logit-lens probabilities (L, k) of the given classes, and their names."""
    names = [class_names[i] if i < len(class_names) else f"class {i}" for i in classes]
    return a.lens[:, classes], names


def lens_top(a: Analysis) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: the class [CLS] would predict if the network stopped there, and its probability."""
    top = a.lens.argmax(1)  # (L,)
    return top, a.lens[np.arange(len(top)), top]


def lens_vs_output(a: Analysis) -> float:
    """max |logit lens after the last block - the model's output probabilities| (should be ~0)."""
    return float(np.abs(a.lens[-1] - a.probs).max())
