"""Figures for the "What if?" page: a patch picker that shows what is hidden, deletion/insertion
curves, the randomisation check and the per-patch logit lens. ``to_npz`` (the numbers behind a view
as .npz) moved to ``export``, which every page's exports share; it is still importable from here.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from vit_core.render import drawing, figures
from vit_core.render.export import to_npz  # noqa: F401  re-exported: it was defined here first

# one colour per method, the same in every chart of the page
COLORS = {"raw_attention": "#2563eb", "rollout": "#c2410c", "chefer": "#15803d", "random": "#6b7280"}


def mask_picker(image: np.ndarray, grid: tuple[int, int], patch: int, masked: Sequence[int] = (),
                height: int = 460, font_size: int = figures.FONT_SIZE) -> go.Figure:
    """The image with one clickable marker per patch; hidden patches are drawn dark with a red edge.

    Selection events carry the patch index as customdata (as figures.patch_picker).
    """
    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    hidden = np.zeros(gh * gw, bool)
    hidden[list(masked)] = True
    h = hidden.astype(np.float32)  # (N,) 0 shown, 1 hidden
    # Colours as numbers on a two-colour scale: plotly checks a list of colour strings element by
    # element (~50 ms for 196 patches), and this figure is rebuilt on every click. One trace, so the
    # markers stay in patch order (a browser test clicks the n-th marker).
    marker = dict(size=max(6, int(height / max(gh, gw) * 0.8)), symbol="square", color=h.tolist(), cmin=0, cmax=1,
                  colorscale=[[0, "rgba(255,255,255,0.08)"], [1, "rgba(0,0,0,0.55)"]], showscale=False,
                  line=dict(width=(1 + h).tolist(), color=h.tolist(), cmin=0, cmax=1,
                            colorscale=[[0, "rgba(255,255,255,0.45)"], [1, "rgba(239,68,68,0.95)"]]))
    # full opacity either way: plotly would otherwise dim every marker but the one clicked.
    # Unchecked: rebuilt on every click, and validation was 80% of its cost (tests validate it).
    return figures.unchecked(
        [dict(type="image", source=figures.data_uri(image), hoverinfo="skip"),
         dict(type="scatter", x=(cols * patch + patch / 2).tolist(), y=(rows * patch + patch / 2).tolist(),
              mode="markers", marker=marker, customdata=list(range(gh * gw)),
              hovertemplate="patch %{customdata}<extra></extra>",
              selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)))],
        figures.layout(font_size, height=height, margin=dict(l=0, r=0, t=0, b=0), showlegend=False,
                       dragmode=False, clickmode="event+select", xaxis=dict(visible=False), yaxis=dict(visible=False)))


def hidden_view(image: np.ndarray, masked: Sequence[int], patch: int) -> np.ndarray:
    """The model's input with the hidden patches outlined in red, enlarged for the screen."""
    scale = max(1, 448 // max(image.shape[:2]))
    out = Image.fromarray(figures.upscale(image, scale))
    d = ImageDraw.Draw(out)
    gw, P = image.shape[1] // patch, patch * scale
    for p in masked:
        r, c = divmod(int(p), gw)
        d.rectangle([c * P, r * P, (c + 1) * P - 1, (r + 1) * P - 1], outline=(239, 68, 68), width=2)
    return np.asarray(out)


def curves(fractions: np.ndarray, series: dict[str, np.ndarray], names: dict[str, str], title: str,
           xlabel: str, areas: dict[str, float] | None = None, height: int = 420,
           font_size: int = figures.FONT_SIZE) -> go.Figure:
    """Probability curves (deletion or insertion), one line per method, its area in the legend."""
    x = 100 * np.asarray(fractions)
    data = [go.Scatter(x=x, y=y, mode="lines+markers",
                       name=names.get(k, k) + (f" (area {areas[k]:.3f})" if areas else ""),
                       line=dict(color=COLORS.get(k), width=3, dash="dot" if k == "random" else "solid"))
            for k, y in series.items()]
    return go.Figure(data=data, layout=figures.layout(
        font_size, title, height=height, xaxis=dict(title=xlabel),
        yaxis=dict(title="probability of the class", range=[0, 1.02]),
        legend=dict(orientation="h", y=-0.3, x=0, yanchor="top")))


def correlation_chart(steps: list[str], corr: np.ndarray, method: str, name: str,
                      font_size: int = figures.FONT_SIZE) -> go.Figure:
    """Spearman correlation with the original map after each cumulative randomisation step."""
    return go.Figure(
        data=[go.Scatter(x=steps, y=corr, mode="lines+markers+text", text=[f"{c:.2f}" for c in corr],
                         textposition="top center", textfont=figures.font(font_size),
                         line=dict(color=COLORS.get(method), width=3))],
        layout=figures.layout(font_size, f"{name}: rank correlation with the original map", height=400,
                              xaxis=dict(title="re-initialised so far, from the top down"),
                              yaxis=dict(title="Spearman ρ", range=[-1.05, 1.2], zeroline=True)))


def randomization_strip(image: np.ndarray, maps: np.ndarray, steps: list[str], corr: np.ndarray,
                        cmap: str = "inferno", tile: int = 150) -> np.ndarray:
    """The map after each randomisation step on the image, labelled with the step and its ρ."""
    tiles = drawing.overlay_tiles(image, maps, cmap, 0.65, tile=tile)  # (S, tile, tile, 3)
    labels = [f"{s} {c:+.2f}" if i else s for i, (s, c) in enumerate(zip(steps, corr))]
    return drawing.labelled_tiles(tiles, labels, cols=len(tiles) if len(tiles) <= 7 else 5, tile_px=tile,
                                  font_size=15)


def trajectory(norms: np.ndarray, cls_sim: np.ndarray, self_sim: np.ndarray, layer: int,
               font_size: int = figures.FONT_SIZE) -> go.Figure:
    """One token through the layers: its norm (left axis) and two cosine similarities (right)."""
    x = np.arange(len(norms))
    data = [go.Scatter(x=x, y=norms, name="norm of the token", mode="lines+markers",
                       line=dict(color="#c2410c", width=3))]
    if not np.isnan(cls_sim).all():
        data.append(go.Scatter(x=x, y=cls_sim, name="cosine to [CLS]", yaxis="y2", mode="lines+markers",
                               line=dict(color="#2563eb", width=3)))
    data.append(go.Scatter(x=x, y=self_sim, name="cosine to its own embedding", yaxis="y2",
                           mode="lines+markers", line=dict(color="#15803d", width=3, dash="dot")))
    return go.Figure(data=data, layout=figures.layout(
        font_size, "The patch's token through the layers", height=400,
        xaxis=dict(title="after block (0 = the embedding)", dtick=1),
        yaxis=dict(title="norm", rangemode="tozero"),
        yaxis2=figures.axis(font_size, "cosine", overlaying="y", side="right", range=[-1.05, 1.05],
                            tickvals=[-1, -0.5, 0, 0.5, 1], showgrid=False),
        legend=dict(orientation="h", y=-0.25, x=0, yanchor="top"),
        shapes=[dict(type="line", x0=layer, x1=layer, yref="paper", y0=0, y1=1,
                     line=dict(color="#555", dash="dash"))]))


def lens_map(prob: np.ndarray, top_names: np.ndarray, top_probs: np.ndarray, title: str,
             height: int = 400, font_size: int = figures.FONT_SIZE) -> go.Figure:
    """Per-patch logit lens: colour = probability of the model's prediction read from each patch
    token; hovering names the class that patch token alone would give."""
    gh, gw = prob.shape
    text = [[f"{top_names[r, c]} {top_probs[r, c]:.0%}" for c in range(gw)] for r in range(gh)]
    return go.Figure(
        data=[go.Heatmap(z=prob, zmin=0, zmax=1, colorscale="Viridis", text=text,
                         colorbar=figures.colorbar(font_size, thickness=12),
                         hovertemplate="row %{y}, col %{x}: %{text}<extra></extra>")],
        layout=figures.layout(font_size, title, height=height, xaxis=dict(visible=False),
                              yaxis=dict(visible=False, autorange="reversed", scaleanchor="x")))


def norm_map(norms: np.ndarray, outliers: Sequence[int], cmap: str = "magma", size: int = 448) -> np.ndarray:
    """Token norms on the patch grid (own scale), the high-norm outliers outlined in cyan."""
    gh, gw = norms.shape
    img = Image.fromarray(figures.colorize(norms, cmap, size=(size * gh // max(gh, gw), size * gw // max(gh, gw))))
    d = ImageDraw.Draw(img)
    ch, cw = img.height / gh, img.width / gw
    for p in outliers:
        r, c = divmod(int(p), gw)
        d.rectangle([c * cw, r * ch, (c + 1) * cw - 1, (r + 1) * ch - 1], outline=(0, 255, 255), width=3)
    return np.asarray(img)


def rgb_grid(rgb: np.ndarray, size: int = 448) -> np.ndarray:
    """A (gh, gw, 3) array in [0, 1] as a crisp (size x size) uint8 picture."""
    img = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    return np.asarray(Image.fromarray(img).resize((size, size), Image.NEAREST))


__all__ = ["COLORS", "to_npz", "mask_picker", "hidden_view", "curves", "correlation_chart",
           "randomization_strip", "trajectory", "lens_map", "norm_map", "rgb_grid"]
