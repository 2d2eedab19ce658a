"""The narrative pages' plotly charts: the history timeline, the cost of pixels as tokens, Table 2.

Pure functions of the lecture's numbers (``vit_core.analysis.lecture``): one go.Figure each,
built in a single constructor call with ``style.layout``; every label at ``font_size`` px or
more and dark. The pages cache them with ``pages._ui.cache.chart``.
"""
from __future__ import annotations

import datetime as dt
import textwrap

import plotly.graph_objects as go

from vit_core.analysis.lecture import Event, MODEL_LABELS
from vit_core.render.style import FONT_SIZE, font, layout, log_ticks

KIND_COLOURS = {"NLP": "#1d4ed8", "ViT": "#c2410c", "Vision": "#047857"}
KIND_LABELS = {"NLP": "Language", "ViT": "ViT", "Vision": "Vision"}
SHORT_LABELS = {**MODEL_LABELS, "bit_l": "BiT-L", "noisy_student": "Noisy Student"}
GRID = "#e5e5e5"


def timeline(events: list[Event], focus: str, font_size: int = FONT_SIZE) -> go.Figure:
    """An ordinal timeline: events evenly spaced (the years 2020-21 are crowded), labels
    alternating above and below the line, so that every name stays readable on a projector.

    Labels are dark text framed in their kind's colour (coloured or grey text washes out on a
    beamer); ``focus`` (an event name) is drawn larger and in bold.
    """
    grow = (font_size + 1) / 17  # the layout was drawn for 17 px labels; larger ones need more room
    data = [go.Scatter(x=[-0.5, len(events) - 0.5], y=[0, 0], mode="lines", line=dict(color="#444", width=3),
                       hoverinfo="skip", showlegend=False)]
    for kind, label in KIND_LABELS.items():
        idx = [i for i, e in enumerate(events) if e.kind == kind]
        if idx:
            data.append(go.Scatter(
                x=idx, y=[0] * len(idx), mode="markers", name=label,
                marker=dict(size=[34 if events[i].name == focus else 22 for i in idx], color=KIND_COLOURS[kind],
                            line=dict(width=[5 if events[i].name == focus else 2 for i in idx], color="black")),
                customdata=[[events[i].name, events[i].who, events[i].line] for i in idx],
                hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]}<br>%{customdata[2]}<extra></extra>"))
    notes = []
    for i, e in enumerate(events):
        name = "<br>".join(textwrap.wrap(e.name, max(15, round(17 / grow)), break_on_hyphens=False))
        up = i % 2 == 0
        notes.append(dict(
            x=i, y=0, ax=0, ay=round((-62 if up else 62) * grow ** 0.5), showarrow=True, arrowhead=0, arrowwidth=2,
            arrowcolor="#666", yanchor="bottom" if up else "top", font=font(font_size + 1),
            bordercolor=KIND_COLOURS[e.kind], borderwidth=2, borderpad=2, bgcolor="white",
            text=(f"<b>{name}</b>" if e.name == focus else name) + f"<br>{dt.date.fromisoformat(e.date):%b %Y}"))
    return go.Figure(data=data, layout=layout(
        font_size, height=round(380 * grow), grow=False, margin=dict(l=10, r=10, t=2 * font_size + 10, b=10),
        plot_bgcolor="white", legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"), annotations=notes,
        xaxis=dict(visible=False, range=[-0.6, len(events) - 0.4]), yaxis=dict(visible=False, range=[-1.3, 1.3])))


def score_bars(labels: list[str], entries: list[int], texts: list[str],
               title: str = "Attention scores per head and layer (log scale)",
               font_size: int = FONT_SIZE) -> go.Figure:
    """Attention scores of a few ways of cutting an image into tokens, as bars on a log axis."""
    wrapped = ["<br>".join(textwrap.wrap(s, 16)) for s in labels]  # long names would overlap
    return go.Figure(
        data=[go.Bar(x=wrapped, y=entries, marker_color=["#7f1d1d", "#b91c1c", "#c2410c"][:len(entries)],
                     text=texts, textposition="outside", textfont=font(font_size), cliponaxis=False,
                     constraintext="none")],
        layout=layout(font_size, title, height=420, plot_bgcolor="white", title_width=560,
                      yaxis=dict(title="scores", type="log", gridcolor=GRID)))


def patch_size_curve(sizes: list[int], scores: list[int], patch: int, patch_scores: int, image_size: int,
                     font_size: int = FONT_SIZE) -> go.Figure:
    """Attention scores against the patch size (log-log), the chosen patch size marked.

    Tick labels are thinned so that neighbours such as 14 and 16, or 28 and 32, never overlap.
    """
    ticks = log_ticks(sizes, patch, min_gap=0.2 * font_size / FONT_SIZE)
    return go.Figure(
        data=[go.Scatter(x=sizes, y=scores, mode="lines+markers", marker=dict(size=11), line=dict(width=3),
                         hovertemplate="P = %{x}: %{y:,} scores<extra></extra>"),
              go.Scatter(x=[patch], y=[patch_scores], mode="markers", marker=dict(size=20, color="#c2410c"),
                         hoverinfo="skip")],
        layout=layout(font_size, f"Halving P multiplies the scores by about 16 ({image_size} x {image_size} image)",
                      height=420, showlegend=False, plot_bgcolor="white", title_width=560,
                      xaxis=dict(title="patch size P", type="log", tickvals=ticks, ticktext=[str(p) for p in ticks],
                                 gridcolor=GRID),
                      yaxis=dict(title="scores (log)", type="log", dtick=1, gridcolor=GRID)))


def _acc_range(accs: list[float], below: float, above: float) -> list[float]:
    spread = max(accs) - min(accs) + 0.5
    return [min(accs) - below * spread, max(accs) + above * spread]


def results_scatter(rows: list[dict], dataset: str, colours: dict[str, str],
                    font_size: int = FONT_SIZE) -> go.Figure:
    """Table 2 for one benchmark: accuracy against pre-training compute, one marker per model.

    Args:
        rows: ``lecture.results_rows()`` of this dataset (keys, families, accuracies, core-days).
        colours: one colour per family ("ViT", "CNN").
    """
    data = []
    for fam in ("ViT", "CNN"):
        rs = [r for r in rows if r["family"] == fam]
        data.append(go.Scatter(
            x=[r["core_days"] for r in rs], y=[r["accuracy"] for r in rs], mode="markers+text", name=fam,
            text=[SHORT_LABELS[r["key"]] for r in rs], textfont=font(font_size),
            textposition=["bottom center" if r["key"] == "bit_l" else "top center" for r in rs],
            marker=dict(size=22, color=colours[fam], symbol="circle" if fam == "ViT" else "square",
                        line=dict(width=2, color="black")),
            hovertemplate="%{text}<br>%{y:.2f}%<br>%{x:,} TPUv3-core-days<extra></extra>"))
    return go.Figure(data=data, layout=layout(
        font_size, f"{dataset}: accuracy against pre-training compute", height=480, plot_bgcolor="white",
        title_width=680,  # the legend sits in the empty lower right corner, clear of the axis title
        legend=dict(x=0.99, y=0.02, xanchor="right", yanchor="bottom", bgcolor="rgba(255,255,255,0.8)"),
        # decades only: plotly's in-between log labels (2, 3, ... 9) come out small
        xaxis=dict(title="pre-training compute (TPUv3-core-days, log scale)", type="log", range=[2.0, 4.5],
                   dtick=1, gridcolor=GRID),
        yaxis=dict(title="fine-tuned top-1 accuracy (%)", gridcolor=GRID,
                   range=_acc_range([r["accuracy"] for r in rows], 0.6, 0.5))))


def results_bars(rows: list[dict], dataset: str, colours: dict[str, str], font_size: int = FONT_SIZE) -> go.Figure:
    """Table 2 for one benchmark as horizontal bars, best on top, accuracies printed."""
    ordered = sorted(rows, key=lambda r: r["accuracy"])
    accs = [r["accuracy"] for r in ordered]
    return go.Figure(
        data=[go.Bar(x=accs, y=[SHORT_LABELS[r["key"]] for r in ordered], orientation="h",
                     marker_color=[colours[r["family"]] for r in ordered], text=[f"{v:.2f}" for v in accs],
                     textposition="outside", textfont=font(font_size), cliponaxis=False, constraintext="none")],
        layout=layout(font_size, f"{dataset} (%)", height=480, plot_bgcolor="white", title_width=440,
                      margin=dict(l=10, r=30, t=2 * font_size + 18, b=10),
                      xaxis=dict(range=[min(accs) - 2, max(accs) + 1.6], gridcolor=GRID)))
