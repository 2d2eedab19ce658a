"""The Overview's animation: one image walked through the model, one frame per step.

Patches, the flattened row of tokens, the patch embedding, [CLS], the positions, a few encoder
blocks and the prediction, each drawn from the real tensors in an ``analysis.walk.Walk``. One
go.Figure with plotly animation frames, Play/Pause and a slider: the browser steps through it
without asking the server again, and one figure per (model, image, font size) serves everyone.

Three panels keep their place in every frame, so that the eye follows one thing changing: the
image (top left), the row of tokens (bottom, one column per token) and a side panel (top right:
the shape of the data, the position embeddings, or the classes [CLS] would give). Every frame
repeats every trace, because the slider may jump to any frame from any other.
"""
from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from vit_core.analysis.walk import Walk
from vit_core.io.loading import class_name
from vit_core.render.figures import clip_limit, data_uri, overlay, to_jpeg
from vit_core.render.style import FONT_SIZE, INK, axis, font, layout, safe_colorscale

ACCENT = "#c2410c"  # the Overview's flow boxes
RDBU = safe_colorscale("RdBu_r")  # red > 0 > blue
TOP5 = 5
MODEBAR_PX = 100  # the mode bar with the page's buttons (PNG, full screen), over the title's right end
STEP_MS = 2600  # a frame's time on screen while playing: long enough to read its sentence
# Panel domains in paper coordinates: image top left, side panel top right, token row at the bottom.
IMAGE_X, SIDE_X, TOP_Y, ROW_Y = (0.0, 0.36), (0.50, 1.0), (0.40, 1.0), (0.0, 0.30)


def _typed(a, dtype=np.float32) -> dict:
    """An array as plotly's typed-array spec (base64 bytes), encoded once when the figure is built.

    Plotly would otherwise re-encode every numpy array (and deep-copy every list) each time a page
    run sends the figure: ~50 ms a run for this figure, now ~10. NaN breaks a line like None.
    """
    arr = np.ascontiguousarray(np.asarray(a, dtype=dtype))
    spec = dict(dtype=arr.dtype.str.lstrip("<|="), bdata=base64.b64encode(arr.tobytes()).decode())
    return spec if arr.ndim == 1 else dict(spec, shape=", ".join(map(str, arr.shape)))


HIDDEN_HEAT = dict(z=_typed([[0.0]]), x=_typed([0]), y=_typed([0]), visible=False)  # every frame lists every trace
HIDDEN_IMAGE = dict(z=_typed(np.zeros((1, 1, 3)), np.uint8), visible=False)


@dataclass
class Step:
    """What one frame shows; a field left empty hides its part."""

    label: str  # on the slider, and the frame's name
    sentence: str  # the frame's title
    image: str = ""  # JPEG data URI of the top-left picture
    grid: bool = False  # patch borders over the picture
    order: bool = False  # the reading order over the picture
    pixels: bool = False  # the token row shows each patch's pixels
    row: np.ndarray | None = None  # (tokens, D') the token row as heat, the last tokens if shorter than T
    cls_box: bool = False
    side_heat: np.ndarray | None = None  # (T, D')
    side_probs: np.ndarray | None = None  # (C,): the top five as bars
    side_text: str = ""  # the shape of the data, large
    side_title: str = ""
    image_title: str = ""


def _picture(img: np.ndarray, px: int) -> str:
    """A JPEG data URI at most ``px`` across: ~10 kB of JPEG instead of 150 k JSON numbers (the grid
    and the reading order are drawn over it as lines, so they stay sharp)."""
    h, w = img.shape[:2]
    return data_uri(to_jpeg(img, min(w, round(w * px / max(h, w))), quality=85))


def _grid_lines(w: Walk) -> dict:
    """The patch borders as one line trace (None breaks the line between borders)."""
    (gh, gw), P = w.grid, w.patch_size
    xs, ys = [], []
    for c in range(gw + 1):  # the vertical borders, then the horizontal ones
        xs, ys = xs + [c * P, c * P, np.nan], ys + [0, gh * P, np.nan]
    for r in range(gh + 1):
        xs, ys = xs + [0, gw * P, np.nan], ys + [r * P, r * P, np.nan]
    return dict(x=_typed(xs), y=_typed(ys), mode="lines", line=dict(color="white", width=1.5))


def _reading_order(w: Walk) -> dict:
    """Patch centres joined row by row, an arrow at each row's end: the order tokens are read in."""
    (gh, gw), P = w.grid, w.patch_size
    centres = list(np.arange(gw) * P + P / 2)
    return dict(x=_typed((centres + [np.nan]) * gh),
                y=_typed([v for r in range(gh) for v in [r * P + P / 2] * gw + [np.nan]]),
                mode="lines+markers", line=dict(color="cyan", width=2),
                marker=dict(symbol="arrow", angleref="previous", size=_typed(([0] * (gw - 1) + [14, 0]) * gh, np.uint8),
                            color="cyan"))


def _front(w: Walk) -> str:
    """The sentence of the step that puts [CLS] (and any registers) in front."""
    extra, T = w.num_prefix_tokens, w.num_tokens
    if not extra:
        return f"This model has no [CLS]: it will read the mean of its {T} patch tokens instead."
    regs = f" and {extra - 1} register tokens go" if extra > 1 else " goes"
    return f"[CLS]{regs} in front: a learned token that will collect the answer ({T} tokens now)."


def steps(w: Walk, names: list[str], image_px: int = 192) -> list[Step]:
    """The walk's frames, in order, each with its one sentence."""
    (gh, gw), P, C = w.grid, w.patch_size, w.in_chans
    N, D = w.num_patches, w.embed_dim
    H, W = w.image.shape[:2]
    cls = "[CLS]" if w.reads_cls else "the patch mean"  # what the head reads
    plain = _picture(w.image, image_px)
    out = [
        Step("patches", f"Your image ({H} x {W} pixels, as the model sees it) is cut into {gh} x {gw} = {N} "
                        f"patches of {P} x {P} pixels.", plain, grid=True, side_text=f"{C} x {H} x {W}"),
        Step("flatten", f"Flattened, the patches become a row of {N} tokens, read left to right, top to bottom "
                        f"(below: each patch's pixels).", plain, grid=True, order=True, pixels=True,
             side_text=f"{N} x {C * P * P}"),
        Step("embed", f"Patch embedding: one linear map turns each patch's {C * P * P} numbers into {D} "
                      f"(red > 0 > blue).", plain, grid=True, row=w.patch_embed, side_text=f"{N} x {D}"),
        Step("[CLS]", _front(w), plain, grid=True, row=w.prefixed, cls_box=True,
             side_text=f"{w.num_tokens} x {D}"),
        Step("+ pos", "Position embeddings (right) are added: each token now carries where its patch was.",
             plain, row=w.encoder_in, cls_box=True, side_heat=w.pos_embed,
             side_title="position embeddings, a column per token"),
    ]
    for k, b in enumerate(w.blocks):
        out.append(Step(f"block {b}", f"Encoder block {b} of {w.depth}: every token attends to every token and is "
                                      f"updated; {cls} gathers from the patches.",
                        _picture(overlay(w.image, w.cls_attn[k], "inferno", 0.6), image_px), row=w.block_out[k],
                        cls_box=True, side_probs=w.lens[k], side_title=f"what {cls} would say after block {b}",
                        image_title=f"where {cls} looks in block {b}"))
    last = _picture(overlay(w.image, w.rollout, "inferno", 0.6), image_px)
    drew = f"where {cls} drew from (rollout)"
    if w.probs.size:
        top = int(np.argmax(w.probs))
        out.append(Step("predict", f"After all {w.depth} blocks, a LayerNorm and one linear layer read {cls} alone: "
                                   f"'{class_name(names, top)}', {w.probs[top]:.0%}.", last, row=w.final,
                        cls_box=True, side_probs=w.probs, side_title="the prediction (top 5)", image_title=drew))
    else:
        out.append(Step("features", f"After the last block, {cls} (after a LayerNorm) is the image's feature "
                                    f"vector: this model has no class head.", last, row=w.final, cls_box=True,
                        side_text=f"{D} features", image_title=drew))
    return out


def walk_figure(w: Walk, names: list[str], font_size: int = FONT_SIZE, height: int | None = None,
                width_px: int = 1180, image_px: int = 192) -> go.Figure:
    """The walk as an animated figure: a frame per step, Play/Pause and a slider.

    Args:
        w: the walk of one image (``analysis.walk.walk``).
        names: the model's class names (a missing name reads "class i").
        font_size: the smallest text on the chart (24 in presentation mode).
        height: in px; by default 560, or 620 at presentation sizes (a 720p projector under its menu
            bar); taller by a row when the slider's labels need the whole width.
        width_px: about how wide the chart is shown: each step's sentence is wrapped to fit.
        image_px: pictures are sent at most this many pixels across.

    Returns:
        A go.Figure whose frames are named by their slider labels; the first frame is shown.
    """
    fs = font_size
    height = height or (560 if fs <= FONT_SIZE else 620)
    (gh, gw), P, T = w.grid, w.patch_size, w.num_tokens
    prefix = w.num_prefix_tokens
    lo, hi = float(w.dims[0]) - 0.5, float(w.dims[-1]) + 0.5
    todo = steps(w, names, image_px)
    # the right end of the title line stays clear for the mode bar (its PNG button)
    wrap = max(24, int((width_px - MODEBAR_PX) / (0.5 * (fs + 6))))
    # Play/Pause bottom left (top right, plotly's mode bar would cover them), the slider beside them
    # where its labels fit (in fractions of the plot's width: the figure less margins and tick labels)
    plot_w = max(1, width_px - 4 * fs - 20)
    buttons = (11 * fs + 30) / plot_w
    labels_w = len(todo) * (0.45 * fs * max(len(s.label) for s in todo) + 12) / plot_w
    stacked = buttons + labels_w > 0.98  # the slider goes under the buttons instead
    below = round(1.5 * fs + 24)  # the token row's tick labels
    # the weight spelled out in every frame: the chart theme would make only the first title bold
    title_font = font(fs + 6, weight=600)
    slider_x, slider_pad = (0.0, below + fs + 24) if stacked else (min(0.4, buttons), below)
    height += slider_pad - below  # a second row of controls: the panels keep their size
    titles = ["<br>".join(textwrap.wrap(s.sentence, wrap)) for s in todo]
    lines = max(t.count("<br>") + 1 for t in titles)
    top = round(lines * 1.2 * (fs + 6) + 1.4 * fs + 8)  # the sentence, then the panel titles
    bottom = round(slider_pad + 2.2 * fs + 18)  # the token row's ticks, (the buttons,) the slider
    grid, order = _grid_lines(w), _reading_order(w)
    none = dict(x=_typed([]), y=_typed([]))
    box = dict(x=_typed([-0.5, prefix - 0.5, prefix - 0.5, -0.5, -0.5]), y=_typed([lo, lo, hi, hi, lo])) if prefix else none
    s2 = w.pixels.shape[0]
    # visible=True spelled out: a frame's trace is merged into the one shown, so an unnamed attribute
    # would keep the previous frame's value
    pixel_row = dict(z=_typed(w.pixels, np.uint8), visible=True, x0=prefix, dx=1, y0=lo + (hi - lo) / s2 / 2, dy=(hi - lo) / s2)
    heat = dict(colorscale=RDBU, showscale=False, zmid=0)
    img_px = w.image.shape[1] / max(1, min(image_px, w.image.shape[1]))  # model pixels per picture pixel

    def heat_of(z: np.ndarray | None) -> dict:
        if z is None:
            return HIDDEN_HEAT
        lim = clip_limit(z)
        return dict(z=_typed(z.T), x=_typed(np.arange(T - len(z), T)), y=_typed(w.dims), zmin=-lim, zmax=lim,
                    visible=True)  # z (D', tokens): one column per token

    def frame(s: Step, title: str) -> go.Frame:
        p = s.side_probs if s.side_probs is not None and s.side_probs.size else None
        ranked = np.argsort(p)[::-1][:TOP5] if p is not None else np.zeros(0, int)
        classes = [class_name(names, int(i)) for i in ranked]
        side = dict(visible=s.side_heat is not None or p is not None)
        data = [
            go.Image(source=s.image, dx=img_px, dy=img_px, hoverinfo="skip"),
            go.Scatter(**(grid if s.grid else none), hoverinfo="skip"),
            go.Scatter(**(order if s.order else none), hoverinfo="skip"),
            go.Image(**(pixel_row if s.pixels else HIDDEN_IMAGE), xaxis="x3", yaxis="y3",
                     hovertemplate="patch token %{x}<extra></extra>"),
            go.Heatmap(**heat_of(s.row), **heat, xaxis="x3", yaxis="y3",
                       hovertemplate="token %{x}, dim %{y}: %{z:.2f}<extra></extra>"),
            go.Scatter(**(box if s.cls_box else none), mode="lines", line=dict(color=INK, width=3),
                       xaxis="x3", yaxis="y3", hoverinfo="skip"),
            go.Heatmap(**heat_of(s.side_heat), **heat, xaxis="x2", yaxis="y2",
                       hovertemplate="position %{x}, dim %{y}: %{z:.2f}<extra></extra>"),
            go.Bar(x=_typed(p[ranked] if p is not None else []), y=_typed(np.arange(len(ranked))), visible=p is not None,
                   text=[f"{v:.0%}" for v in p[ranked]] if p is not None else [], orientation="h",
                   xaxis="x2", yaxis="y2", marker_color=ACCENT, textposition="outside", textfont=font(fs),
                   cliponaxis=False, hovertemplate="%{x:.1%}<extra></extra>"),
        ]
        note = dict(xref="paper", yref="paper", showarrow=False, font=font(fs), xanchor="left", yanchor="bottom",
                    y=TOP_Y[1])
        return go.Frame(name=s.label, data=data, layout=dict(
            title=dict(text=title, font=title_font),
            annotations=[dict(note, text=s.side_text, x=sum(SIDE_X) / 2, y=sum(TOP_Y) / 2, xanchor="center",
                              yanchor="middle", font=font(2 * fs, family="monospace"), visible=bool(s.side_text)),
                         dict(note, text=s.side_title, x=SIDE_X[0], visible=bool(s.side_title)),
                         dict(note, text=s.image_title, x=IMAGE_X[0], visible=bool(s.image_title))],
            # no tick labels across: each bar carries its probability, and the token row below numbers
            # the tokens (room for a larger picture)
            xaxis2=dict(side, range=[0, 1.2] if p is not None else [-0.5, T - 0.5], showticklabels=False, ticks=""),
            yaxis2=dict(side, range=[TOP5 - 0.5, -0.5] if p is not None else [lo, hi],
                        tickmode="array" if p is not None else "auto", tickvals=list(range(len(classes))),
                        ticktext=classes),
        ))

    frames = [frame(s, t) for s, t in zip(todo, titles)]
    play = dict(frame=dict(duration=STEP_MS, redraw=True), fromcurrent=True, transition=dict(duration=0),
                mode="immediate")
    jump = dict(frame=dict(duration=0, redraw=True), transition=dict(duration=0), mode="immediate")
    hidden = dict(visible=False, showgrid=False, zeroline=False)
    # plotly puts a multi-line title's first line one line above its top anchor: the pad is that line
    title = dict(text=titles[0], font=title_font, x=0, xanchor="left", xref="paper", y=1, yanchor="top",
                 yref="container", pad=dict(t=round(1.3 * fs)))
    return go.Figure(
        data=frames[0].data, frames=frames,
        layout=layout(
            fs, title,
            height=height, grow=False, margin=dict(l=10, r=2 * fs, t=top, b=bottom), showlegend=False,
            dragmode=False, plot_bgcolor="white", annotations=frames[0].layout.annotations,
            xaxis=dict(hidden, domain=IMAGE_X, range=[0, gw * P]),
            yaxis=dict(hidden, domain=TOP_Y, range=[gh * P, 0], scaleanchor="x", constrain="domain"),
            xaxis2=axis(fs, domain=SIDE_X, anchor="y2", **hidden),
            # scaleanchor=False: image and heatmap traces would otherwise square their cells
            yaxis2=axis(fs, domain=TOP_Y, anchor="x2", scaleanchor=False, **hidden),
            xaxis3=axis(fs, domain=(0.0, 1.0), anchor="y3", range=[-0.5, T - 0.5], showgrid=False, zeroline=False),
            yaxis3=axis(fs, "dim", domain=ROW_Y, anchor="x3", range=[lo, hi], showgrid=False, zeroline=False,
                        scaleanchor=False),
            updatemenus=[dict(type="buttons", direction="left", x=0, xanchor="left", y=0, yanchor="top",
                              pad=dict(t=below), showactive=False, font=font(fs), bgcolor="white",
                              bordercolor=INK, buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                                        dict(label="❚❚ Pause", method="animate",
                                                             args=[[None], jump])])],
            sliders=[dict(active=0, x=slider_x, len=0.98 - slider_x, y=0, yanchor="top",
                          pad=dict(t=slider_pad, b=0),
                          currentvalue=dict(visible=False), font=font(fs), bordercolor=INK, tickcolor=INK,
                          steps=[dict(label=s.label, method="animate", args=[[s.label], jump]) for s in todo])],
        ),
    )
