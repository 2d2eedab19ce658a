"""The look of every plotly chart: projector-sized, dark text on every part, set in the constructor.

Every builder takes ``font_size``, the smallest text on the chart (tick labels, legends, bar
labels, colour bars): 16 px on a laptop, 24 px in presentation mode (the body text is ~23.5 px
there). Axis titles get 2 px more, chart titles 6 px more. Builders make each figure in ONE
go.Figure(data=..., layout=layout(...)) call: plotly's update_layout/update_xaxes/update_traces
chains validate the whole figure on every call and cost ~60 ms a figure.
"""
from __future__ import annotations

import math
import re
import textwrap

import plotly.graph_objects as go
from plotly.colors import get_colorscale

INK = "#111111"  # every text on a chart: dark, never grey (projectors wash grey out)
FONT_SIZE = 16  # the smallest text on a chart outside presentation mode (px)
FONT = dict(size=18, color=INK)  # layout-wide font of figures built elsewhere (see legible)
# Streamlit's chart theme replaces these exact colours anywhere in a figure's JSON with its own
# palette (they are its template's placeholders, #000001 to #000030).
_PLACEHOLDER = re.compile(r"#0000[0-3][0-9]", re.IGNORECASE)


def font(size: int = FONT_SIZE, **kw) -> dict:
    """A plotly font in the chart ink (dark, never grey: projectors wash grey out)."""
    return dict(size=size, color=INK, **kw)


def _title(title: str | dict, size: int) -> dict:
    t = dict(text=title) if isinstance(title, str) else dict(title)
    t.setdefault("font", font(size))
    return t


def axis(size: int = FONT_SIZE, title: str | dict = "", **props) -> dict:
    """A plotly axis: tick labels at ``size`` px, its title 2 px larger, both dark."""
    return dict(dict(tickfont=font(size), automargin=True), **props, title=_title(title, size + 2))


def colorbar(size: int = FONT_SIZE, title: str = "", **props) -> dict:
    """A heatmap colour bar with its ticks and title at ``size`` px, dark."""
    return dict(dict(tickfont=font(size)), **props, title=_title(title, size))


def layout(size: int = FONT_SIZE, title: str | dict = "", xaxis: dict | None = None,
           yaxis: dict | None = None, legend: dict | None = None, title_width: int | None = None,
           grow: bool = True, **props) -> dict:
    """A plotly layout dict with projector-sized, dark text on every part.

    Streamlit's chart theme replaces the layout-wide font, so the title, both axes, the legend and
    the hover labels each carry their own font. Pass the result as ``go.Figure(layout=...)``.

    Args:
        size: the smallest font size on the chart, in px.
        title: the chart title (text, or a plotly title dict).
        xaxis, yaxis: more axis properties (``title`` may be plain text); see ``axis``.
        legend: more legend properties.
        title_width: about how many px the chart is shown across: a longer title is wrapped (and
            the top margin grown to fit), as in a half-width column in presentation mode.
        grow: heights are chosen for 16 px text: larger text gets a taller chart (+25 % at 24 px),
            so that axis titles still fit beside the plot.
        **props: any other layout property (height, margin, shapes, ...).
    """
    if grow and props.get("height") and size > FONT_SIZE:
        props["height"] = round(props["height"] * (1 + (size - FONT_SIZE) / 32))
    lines = 1
    if title_width and isinstance(title, str) and title:
        title = "<br>".join(textwrap.wrap(title, max(12, int(title_width / (0.55 * (size + 6))))))
        lines = title.count("<br>") + 1
    props.setdefault("margin", dict(l=10, r=10, t=2 * size + 18, b=10))
    if lines > 1:
        props["margin"] = dict(props["margin"], t=props["margin"]["t"] + round((lines - 1) * 1.25 * (size + 6)))
    return dict(font=font(size), title=_title(title, size + 6), hoverlabel=dict(font=dict(size=size)),
                legend=dict(dict(font=font(size)), **(legend or {})),
                xaxis=axis(size, **(xaxis or {})), yaxis=axis(size, **(yaxis or {})), **props)


def safe_colorscale(name: str) -> list[list]:
    """A named plotly colour scale as its stops, with Streamlit's placeholder colours nudged by one
    step of red: Inferno and Magma start at #000004, which the theme used to turn pink."""
    return [[pos, "#01" + c[3:] if _PLACEHOLDER.fullmatch(c) else c] for pos, c in get_colorscale(name)]


def legible(fig: go.Figure, size: int = FONT["size"]) -> go.Figure:
    """Projector-sized, dark fonts on a figure that is already built (ticks ``size - 2`` px).

    Costs ~60 ms (plotly validates the figure on each update call): builders here pass
    ``layout(...)`` to the go.Figure constructor instead. Applying it twice does no harm.
    """
    small = size - 2
    fig.update_layout(font=font(size), title_font=font(size + 4), legend_font=font(small),
                      hoverlabel_font_size=small)
    fig.update_xaxes(tickfont=font(small), title_font=font(size))
    fig.update_yaxes(tickfont=font(small), title_font=font(size))
    fig.update_traces(textfont_size=small, selector=lambda t: "textfont" in t)
    # heatmap cell labels keep plotly's contrast colour (white on dark cells, black on light ones)
    fig.update_traces(textfont_color=INK, selector=lambda t: "textfont" in t and t.type != "heatmap")
    fig.update_traces(colorbar_tickfont=font(small), colorbar_title_font=font(small),
                      selector=lambda t: t.type in ("heatmap", "contour"))
    return fig


def log_ticks(values: list[int], keep: int, min_gap: float = 0.2) -> list[int]:
    """A subset of positive values to label on a log axis: `keep` always, then others in order
    when at least `min_gap` decades from every label so far (no overlapping tick labels)."""
    chosen = [keep]
    for v in sorted(values, key=lambda v: (v & (v - 1) != 0, v)):  # powers of two first
        if all(abs(math.log10(v) - math.log10(c)) >= min_gap for c in chosen):
            chosen.append(v)
    return sorted(chosen)


# --- presentation mode: a page's first figure above the fold of a 1280 x 720 projector -----------
# The fixed control bar and the page's top padding take the first ~100 px, the page title ~100 px:
# a first figure placed beside the introduction (not under it) has this much height to stay on screen.
FOLD_PX = 440


def fit_width(width: int, height: int, max_height: int = FOLD_PX, max_width: int | None = None) -> int:
    """The display width (px) at which a ``width`` x ``height`` picture is at most ``max_height`` tall
    and, if given, ``max_width`` wide (never enlarged beyond ``max_width``)."""
    w = max_height * width / max(1, height)
    if max_width is not None:
        w = min(w, max_width)
    return max(1, int(w))


def unchecked(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain trace and layout dicts, without plotly's per-property validation.

    For the few figures rebuilt on every click (the What if? patch picker, a top-5 chart):
    validation is 80-90% of their build time (8-20 ms of a ~10 ms click budget each). Each trace
    dict names its ``type``; tests build every such figure once with validation on.
    """
    return go.Figure(dict(data=data, layout=layout), _validate=False)
