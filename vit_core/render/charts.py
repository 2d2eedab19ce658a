"""The explainer pages' own plotly charts: patch cost, a patch's numbers, position similarity.

Pure functions: numbers and arrays in, one go.Figure out, built in a single constructor call
with ``style.layout`` (fonts at ``font_size`` px or more, dark). The pages cache them with
``pages._ui.cache.chart`` under a key that names every argument.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from vit_core.render.style import FONT_SIZE, INK, colorbar, font, layout, log_ticks, safe_colorscale, unchecked

CHANNEL_COLOURS = ("#dc2626", "#16a34a", "#2563eb")
LEGEND_TOP = dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom")


# --- 1 · Patches ------------------------------------------------------------------------------


def patch_cost(curve: dict[str, list[int]], model_patch: int, model_t2: int, choice: int, choice_t2: int,
               title: str = "Attention cost per head and layer", font_size: int = FONT_SIZE) -> go.Figure:
    """T² against the patch size on log axes, the model's patch size starred, the choice ringed.

    Args:
        curve: ``patches.cost_curve`` output: lists "patch", "N", "T" and "T2".
        model_patch, model_t2: the loaded model's patch size and its T².
        choice, choice_t2: the patch size picked on the page and its T² (ringed unless the model's).
    """
    data = [
        go.Scatter(x=curve["patch"], y=curve["T2"], mode="lines+markers", name="T²",
                   line=dict(width=3, color="#1d4ed8"), marker=dict(size=10),
                   customdata=np.stack([curve["N"], curve["T"]], 1),
                   hovertemplate="P = %{x}<br>N = %{customdata[0]:,}<br>T = %{customdata[1]:,}"
                                 "<br>T² = %{y:,}<extra></extra>"),
        go.Scatter(x=[model_patch], y=[model_t2], mode="markers+text", name="the model",
                   marker=dict(size=22, symbol="star", color="#c2410c"), text=[f"model: P={model_patch}"],
                   textposition="top right", textfont=font(font_size), hoverinfo="skip"),
    ]
    if choice != model_patch:
        data.append(go.Scatter(x=[choice], y=[choice_t2], mode="markers", name="your choice", hoverinfo="skip",
                               marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(width=3, color="#111"))))
    # larger labels need more room between ticks on the log axis
    ticks = log_ticks(list(curve["patch"]), model_patch, min_gap=0.2 * font_size / FONT_SIZE)
    return go.Figure(data=data, layout=layout(
        font_size, title, height=440, showlegend=False,
        xaxis=dict(title="patch size P (pixels, log scale)", type="log", tickvals=ticks),
        yaxis=dict(title="T² scores (log scale)", type="log", dtick=1, tickformat="~s")))


# --- 2 · Patch embedding ------------------------------------------------------------------------


def flat_patch(x: np.ndarray, channels: int, title: str, font_size: int = FONT_SIZE) -> go.Figure:
    """A flattened patch (C*P*P,) as bars, one colour and legend entry per channel (channel-major)."""
    n = len(x) // channels
    data = [go.Bar(x=np.arange(ch * n, (ch + 1) * n), y=x[ch * n:(ch + 1) * n], marker_line_width=0,
                   name="RGB"[ch] if channels == 3 else f"channel {ch}", marker_color=CHANNEL_COLOURS[ch % 3])
            for ch in range(channels)]
    return go.Figure(data=data, layout=layout(
        font_size, title, height=340, bargap=0, legend=LEGEND_TOP,
        xaxis=dict(title="position in the flattened vector"), yaxis=dict(title="normalised value")))


def vector(e: np.ndarray, title: str, font_size: int = FONT_SIZE) -> go.Figure:
    """One vector (D,) as bars over its dimensions (a patch embedding)."""
    return go.Figure(
        data=[go.Bar(x=np.arange(len(e)), y=e, marker_color="#7c3aed", marker_line_width=0)],
        layout=layout(font_size, title, height=320, bargap=0, xaxis=dict(title="embedding dimension"),
                      yaxis=dict(title="value")))


def norms(patch_norm: np.ndarray, pos_norm: np.ndarray, index: int,
          title: str = "Vector sizes (norms) for every patch", font_size: int = FONT_SIZE) -> go.Figure:
    """The norm of every patch embedding and of its position embedding, a dotted line at ``index``."""
    xs = np.arange(len(patch_norm))
    mark = dict(type="line", x0=index, x1=index, xref="x", y0=0, y1=1, yref="paper",
                line=dict(color="black", dash="dot", width=2))
    return go.Figure(
        data=[go.Scatter(x=xs, y=patch_norm, mode="lines", name="patch embedding x_p E",
                         line=dict(width=3, color="#7c3aed")),
              go.Scatter(x=xs, y=pos_norm, mode="lines", name="position embedding",
                         line=dict(width=3, color="#0d9488"))],
        layout=layout(font_size, title, height=340, legend=LEGEND_TOP, shapes=[mark],
                      xaxis=dict(title="patch"), yaxis=dict(title="norm")))


# --- 3 · Position embeddings --------------------------------------------------------------------


def similarity_tile(tile: np.ndarray, row: int, col: int, title: str, zmin: float = -1.0, zmax: float = 1.0,
                    height: int = 440, marker: int = 16, colorscale: str = "RdBu_r",
                    font_size: int = FONT_SIZE) -> go.Figure:
    """One position's cosine similarity to every position (gh, gw), itself marked with an x."""
    return go.Figure(
        data=[go.Heatmap(z=tile, colorscale=safe_colorscale(colorscale), zmin=zmin, zmax=zmax,
                         colorbar=colorbar(font_size, "cos", thickness=18),
                         hovertemplate="row %{y}, col %{x}<br>cos = %{z:.3f}<extra></extra>"),
              go.Scatter(x=[col], y=[row], mode="markers", marker=dict(symbol="x", size=marker, color="black"),
                         hoverinfo="skip", showlegend=False)],
        layout=layout(font_size, title, height=height, xaxis=dict(title="column", constrain="domain"),
                      yaxis=dict(title="row", autorange="reversed", scaleanchor="x", constrain="domain")))


def similarity_by_distance(dist: np.ndarray, means: np.ndarray,
                           title: str = "Mean similarity against distance on the grid",
                           font_size: int = FONT_SIZE, counts: np.ndarray | None = None) -> go.Figure:
    """One dot per grid distance: the mean similarity of all pairs of positions that far apart.

    With ``counts`` (pairs per distance) the dot's area shows how many pairs it averages, and the
    hover says so: the few far-apart pairs (corners) then look as thin as they are.
    """
    if counts is None:
        marker, custom, hover = dict(size=12, color="#0d9488"), None, ""
    else:
        c = np.asarray(counts, np.float64)
        marker = dict(size=5 + 25 * np.sqrt(c / max(1.0, c.max())), color="#0d9488", line=dict(width=1, color=INK),
                      sizemode="diameter")
        custom, hover = c.astype(int), "<br>%{customdata:,} pairs"
    return go.Figure(
        data=[go.Scatter(x=dist, y=means, mode="markers", marker=marker, customdata=custom,
                         hovertemplate="distance %{x:.2f} cells<br>mean cos %{y:.3f}" + hover + "<extra></extra>")],
        layout=layout(font_size, title, height=360, xaxis=dict(title="distance (grid cells)"),
                      yaxis=dict(title="mean cosine similarity")))


def training_curves(logs, colors: dict[str, str]) -> go.Figure:
    """Loss (left) and accuracy (right) of each leg of a run, as the Train page's live view shows them.

    Args:
        logs: the run's legs (``runs.RunLog``: name, steps with loss/train_acc, evals with val_acc).
        colors: line colour by a leg name's first word ("ViT", "CNN"...).

    Rebuilt while a room watches the run, so built unchecked (``style.unchecked``; validated in
    the tests): make_subplots and per-property validation took ~40 ms a build.
    """
    data = []
    for lg in logs:
        if not lg.steps:
            continue
        line = dict(color=colors.get(lg.name.split(" ")[0], "#555"), dash="dot" if "10%" in lg.name else "solid")
        steps = [s.step for s in lg.steps]
        k = max(1, len(steps) // 400)  # smooth the noisy per-step values: running mean over k steps
        loss = np.convolve([s.loss for s in lg.steps], np.ones(k) / k, mode="valid")
        acc = np.convolve([s.train_acc for s in lg.steps], np.ones(k) / k, mode="valid")
        xs = steps[k - 1:][::k]
        data.append(dict(type="scatter", x=xs, y=loss[::k], name=f"{lg.name} loss", line=line,
                         legendgroup=lg.name, showlegend=False, xaxis="x", yaxis="y"))
        data.append(dict(type="scatter", x=xs, y=acc[::k], name=f"{lg.name} train", opacity=0.45,
                         line={**line, "width": 1}, legendgroup=lg.name, xaxis="x2", yaxis="y2"))
        if lg.evals:
            data.append(dict(type="scatter", x=[e.step for e in lg.evals], y=[e.val_acc for e in lg.evals],
                             name=f"{lg.name} validation", mode="lines+markers", line={**line, "width": 3},
                             legendgroup=lg.name, xaxis="x2", yaxis="y2"))
    title = dict(xref="paper", yref="paper", y=1.0, yanchor="bottom", xanchor="center", showarrow=False,
                 font=dict(size=16))
    return unchecked(data, dict(
        xaxis=dict(domain=[0.0, 0.46], anchor="y", title=dict(text="step")),
        xaxis2=dict(domain=[0.54, 1.0], anchor="y2", title=dict(text="step")),
        yaxis=dict(anchor="x"), yaxis2=dict(anchor="x2", range=[0, 1.02]),
        annotations=[dict(title, text="Training loss", x=0.23), dict(title, text="Accuracy", x=0.77)],
        height=330, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25),
        uirevision="keep"))
