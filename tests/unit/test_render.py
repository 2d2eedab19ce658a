"""The plotly builders of vit_core.render: the right numbers in, legible text out, one constructor.

Every builder must put its input numbers into its traces, size every font (ticks, titles,
legends, bar labels, colour bars, annotations) at least at the requested ``font_size`` in dark
ink, and build the figure in one go.Figure call, which is several times cheaper than plotly's
update_* chains. The picture helpers of ``views`` must agree with ``drawing``.
"""
from __future__ import annotations

import base64
import json
import re
import time

import numpy as np
import plotly.graph_objects as go
import pytest

from vit_core.analysis import attention_views, explain, lecture, patches
from vit_core.render import charts, drawing, figures, lecture_charts, views
from tests.support.tiny import tiny_analysis

DARK = {"#000", "#000000", "#111", "#111111", "black"}


def fonts(node, path: str = ""):
    """Every (path, font dict) in a figure's JSON; hover labels (plotly picks their colour) and the
    template (defaults that the figure's own fonts override) left out."""
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}"
            if k == "template":
                continue
            if k.endswith("font") and isinstance(v, dict) and "hoverlabel" not in path:
                yield p, v
            else:
                yield from fonts(v, p)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from fonts(v, f"{path}[{i}]")


def assert_legible(fig: go.Figure, size: int) -> None:
    """Every font at least ``size`` px and dark; ticks and titles present on every axis."""
    spec = fig.to_plotly_json()
    # heatmap cell labels keep plotly's own contrast colour (white on dark cells, black on light)
    cells = {f".data[{i}].textfont" for i, tr in enumerate(spec["data"]) if tr["type"] == "heatmap"}
    found = dict(fonts(spec))
    bad = {p: f for p, f in found.items() if f.get("size", 0) < size
           or p not in cells and str(f.get("color", "")).lower() not in DARK}
    assert not bad, bad
    lay = spec["layout"]
    for name in ("xaxis", "yaxis"):
        assert lay[name]["tickfont"]["size"] >= size and lay[name]["title"]["font"]["size"] >= size
    assert lay["title"]["font"]["size"] >= size and lay["legend"]["font"]["size"] >= size
    for tr in spec["data"]:
        if tr.get("text") is not None or tr.get("texttemplate"):
            assert tr["textfont"]["size"] >= size, tr["type"]
        if tr["type"] == "heatmap":
            assert tr["colorbar"]["tickfont"]["size"] >= size and tr["colorbar"]["title"]["font"]["size"] >= size


RNG = np.random.default_rng(0)
IMAGE = (RNG.random((64, 64, 3)) * 255).astype(np.uint8)


def builders(fs: int) -> dict[str, go.Figure]:
    """One figure from every builder, with known numbers."""
    curve = patches.cost_curve(224, 224, 1, [2, 4, 7, 8, 14, 16, 28, 32, 56])
    rows = [r for r in lecture.results_rows() if r["dataset"] == "ImageNet"]
    colours = {"ViT": "#c2410c", "CNN": "#1d4ed8"}
    return {
        "bar_chart": figures.bar_chart(["a", "b"], np.array([0.7, 0.2]), "top", font_size=fs),
        "heatmap": figures.heatmap(np.arange(12.0).reshape(3, 4), title="m", xlabel="x", ylabel="y",
                                   texttemplate="%{z:.0f}", outline_row=1, font_size=fs),
        "distance_scatter": figures.distance_scatter(np.arange(6.0).reshape(3, 2), font_size=fs),
        "vector_bars": figures.vector_bars({"q": np.arange(4.0), "k": -np.arange(4.0)}, "qk", font_size=fs),
        "patch_picker": figures.patch_picker(IMAGE, (4, 4), 16, selected=5, font_size=fs),
        "mosaic_picker": figures.mosaic_picker(figures.to_jpeg(IMAGE), (4, 4), 16, selected=3, font_size=fs),
        "patch_cost": charts.patch_cost(curve, 16, 197 ** 2, 8, 785 ** 2, font_size=fs),
        "flat_patch": charts.flat_patch(np.arange(12.0), 3, "x_p", font_size=fs),
        "vector": charts.vector(np.arange(5.0), "e", font_size=fs),
        "norms": charts.norms(np.arange(4.0), np.ones(4), 2, font_size=fs),
        "similarity_tile": charts.similarity_tile(np.eye(3), 1, 2, "pos", font_size=fs),
        "similarity_by_distance": charts.similarity_by_distance(np.array([1.0, 1.4]), np.array([0.5, 0.3]),
                                                                font_size=fs),
        "timeline": lecture_charts.timeline(list(lecture.HISTORY), "DINO", font_size=fs),
        "score_bars": lecture_charts.score_bars(["every colour value a token", "b", "c"], [9, 4, 1],
                                                ["9", "4", "1"], font_size=fs),
        "patch_size_curve": lecture_charts.patch_size_curve([1, 2, 4, 8, 14, 16, 28, 32], [8, 7, 6, 5, 4, 3, 2, 1],
                                                            16, 3, 224, font_size=fs),
        "results_scatter": lecture_charts.results_scatter(rows, "ImageNet", colours, font_size=fs),
        "results_bars": lecture_charts.results_bars(rows, "ImageNet", colours, font_size=fs),
    }


@pytest.mark.parametrize("fs", [16, 24])
def test_every_builder_is_legible_at_the_requested_size(fs):
    for name, fig in builders(fs).items():
        try:
            assert_legible(fig, fs)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from None


def test_no_colour_is_a_streamlit_placeholder():
    """Streamlit's theme swaps #000001..#000030 anywhere in a figure for its palette: Inferno's
    #000004 came out pink in the appendix heatmap."""
    for name, fig in builders(16).items():
        spec = fig.to_plotly_json()
        text = json.dumps({"data": spec["data"], "layout": {k: v for k, v in spec["layout"].items() if k != "template"}},
                          default=str)
        assert not re.search(r"#0000[0-3][0-9]", text, re.IGNORECASE), name
    assert figures.heatmap(np.eye(2)).data[0].colorscale[0][1] == "#010004"


def test_normal_size_keeps_the_old_look():
    """16 px ticks, 18 px axis titles, 22 px chart titles: what legible() gave before."""
    lay = figures.bar_chart(["a"], np.array([0.5]), "t").layout
    assert (lay.xaxis.tickfont.size, lay.xaxis.title.font.size, lay.title.font.size) == (16, 18, 22)


def test_traces_carry_the_input_numbers():
    f = builders(16)
    assert list(f["bar_chart"].data[0].x) == [0.2, 0.7] and list(f["bar_chart"].data[0].y) == ["b", "a"]
    assert f["bar_chart"].data[0].text == ("20.0%", "70.0%")
    assert np.array_equal(f["heatmap"].data[0].z, np.arange(12.0).reshape(3, 4))
    assert f["heatmap"].layout.shapes[0].y0 == 0.5 and f["heatmap"].layout.yaxis.autorange == "reversed"
    assert [list(t.y) for t in f["distance_scatter"].data] == [[0, 2, 4], [1, 3, 5]]
    assert [t.name for t in f["vector_bars"].data] == ["q", "k"] and list(f["vector_bars"].data[1].y) == [0, -1, -2, -3]
    pick = f["patch_picker"]
    assert pick.data[0].source.startswith("data:image/jpeg;base64,") and len(pick.data[1].x) == 16
    assert tuple(pick.layout.shapes[0][k] for k in ("x0", "y0", "x1", "y1")) == (16, 16, 32, 32)  # patch 5
    assert list(f["patch_cost"].data[0].x) == [2, 4, 7, 8, 14, 16, 28, 32, 56]
    assert list(f["patch_cost"].data[1].y) == [197 ** 2] and list(f["patch_cost"].data[2].x) == [8]
    assert [list(t.y) for t in f["flat_patch"].data] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert [t.name for t in f["flat_patch"].data] == ["R", "G", "B"]
    assert list(f["vector"].data[0].y) == [0, 1, 2, 3, 4]
    assert list(f["norms"].data[1].y) == [1, 1, 1, 1] and f["norms"].layout.shapes[0].x0 == 2
    tile = f["similarity_tile"]
    assert np.array_equal(tile.data[0].z, np.eye(3)) and (tile.data[1].x, tile.data[1].y) == ((2,), (1,))
    assert list(f["similarity_by_distance"].data[0].y) == [0.5, 0.3]
    notes = f["timeline"].layout.annotations
    assert len(notes) == len(lecture.HISTORY) and "<b>DINO</b>" in notes[8].text and "Apr 2021" in notes[8].text
    assert list(f["score_bars"].data[0].y) == [9, 4, 1] and "<br>" in f["score_bars"].data[0].x[0]
    imagenet = {r["key"]: r["accuracy"] for r in lecture.results_rows() if r["dataset"] == "ImageNet"}
    scatter = {x for t in f["results_scatter"].data for x in t.y}
    assert scatter == set(imagenet.values()) and max(f["results_bars"].data[0].x) == max(imagenet.values())


def test_no_page_chart_is_changed_after_construction():
    """Built in one constructor, every layout part a page needs is already there."""
    for name, fig in builders(24).items():
        lay = fig.layout
        assert lay.font.size == 24 and lay.margin.l is not None and lay.xaxis.automargin, name


def test_one_constructor_is_cheaper_than_update_chains():
    def old_way():
        fig = go.Figure(go.Bar(x=np.arange(64), y=np.arange(64.0), marker_color="#7c3aed", marker_line_width=0))
        fig.update_layout(font=figures.FONT, height=320, bargap=0, margin=dict(l=10, r=10, t=50, b=10),
                          title="e", xaxis_title="embedding dimension", yaxis_title="value")
        return figures.legible(fig)

    def new_way():
        return charts.vector(np.arange(64.0), "e")

    def best(fn, n=20):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(n):
                fn()
            times.append(time.perf_counter() - t)
        return min(times)

    new_way(), old_way()  # warm plotly's validators
    assert best(new_way) < 0.5 * best(old_way)


def test_legible_still_serves_figures_built_elsewhere():
    fig = figures.legible(go.Figure(go.Heatmap(z=[[0, 1]]), layout=dict(title="t", xaxis_title="x")))
    assert fig.layout.xaxis.tickfont.size == 16 and fig.layout.xaxis.tickfont.color == figures.INK
    assert fig.data[0].colorbar.tickfont.size == 16


def test_log_ticks_never_collide():
    sizes = [1, 2, 4, 8, 14, 16, 28, 32]
    for keep in sizes:
        for gap in (0.2, 0.3):
            t = figures.log_ticks(sizes, keep, min_gap=gap)
            assert keep in t and not {14, 16} <= set(t) and not {28, 32} <= set(t)
    assert figures.log_ticks(sizes, 7) == [1, 2, 4, 7, 16, 32]  # a size not on the curve is labelled too


def test_layout_merges_axis_properties_and_titles():
    lay = figures.layout(20, "t", xaxis=dict(title="x", type="log"), yaxis=dict(visible=False), height=300)
    assert lay["xaxis"]["type"] == "log" and lay["xaxis"]["title"]["text"] == "x"
    assert lay["xaxis"]["title"]["font"]["size"] == 22 and lay["title"]["font"]["size"] == 26
    assert lay["yaxis"]["visible"] is False and lay["height"] == 338 and lay["margin"]["t"] == 58  # +12.5 %
    assert figures.layout(16, height=300)["height"] == figures.layout(24, height=300, grow=False)["height"] == 300
    assert figures.layout(16, dict(text="t", y=0.9))["title"] == dict(text="t", y=0.9, font=figures.font(22))


def test_image_helpers():
    jpeg = figures.to_jpeg(IMAGE)
    assert figures.image_size(jpeg) == (64, 64)
    assert figures.data_uri(jpeg) == figures.data_uri(IMAGE)
    png = figures.to_png(IMAGE)
    assert figures.data_uri(png).startswith("data:image/png;base64,")  # a PNG stays a PNG, lossless
    assert base64.b64decode(figures.data_uri(png).split(",", 1)[1]) == png
    assert figures.clip_limit(np.zeros((3, 3))) == 1.0
    assert figures.clip_limit(np.arange(-100.0, 101.0), 50) == pytest.approx(50)


@pytest.mark.parametrize("grid,tile", [((14, 14), 60), ((7, 7), 64), ((4, 6), 24)])
def test_mosaic_pitch_matches_the_drawing(grid, tile):
    n = grid[0] * grid[1]
    sim = np.random.default_rng(1).random((n, *grid)).astype(np.float32) * 2 - 1
    mos, pitch = drawing.similarity_mosaic(sim, tile=tile)
    assert views.mosaic_pitch(grid, tile) == (pitch, mos.shape[1])
    full = views.similarity_grid(sim, "RdBu_r", True, tile, highlight=0, label="cosine similarity")
    assert full.shape[1] == mos.shape[1] and full.shape[0] > mos.shape[0]


@pytest.fixture(scope="module")
def tiny_and_model():
    return tiny_analysis(32, 2, 40, 4)


@pytest.fixture(scope="module")
def tiny(tiny_and_model):
    return tiny_and_model[0]


def test_head_softmax_is_what_the_model_computed(tiny_and_model):
    a, model = tiny_and_model
    for layer in range(a.depth):
        qkv, own = explain.layer_qkv(model, a, layer), explain.layer_attention(model, a, layer)
        for head in range(a.num_heads):
            s = attention_views.head_softmax(a, qkv, layer, head, own)
            assert s.diff < 1e-5 and s.row_sum_error < 1e-12
            assert np.allclose(s.scores, s.raw / np.sqrt(a.head_dim))
            row = attention_views.attention_step(a, qkv, layer, head, 0, own)
            assert np.allclose(s.weights[0], row.weights)


def test_views_draw_the_pictures_of_a_view(tiny):
    a = tiny
    big = figures.upscale_to(a.image).shape
    assert views.token_overlay(a, a.rollout[-1][0]).shape == big
    assert views.map_overlay(a, np.ones(a.grid)).shape == big
    mean = views.query_overlay(a, 1, "mean", 0, "inferno", 0.6)
    one = views.query_overlay(a, 1, "2", 0, "inferno", 0.6)
    assert mean.shape == one.shape == big and not np.array_equal(mean, one)
    assert views.query_strip(a, 0, 1, "viridis", 0.5, 48).ndim == 3
    assert views.cls_overlay(a, 1, "max", "inferno", 0.6).shape == big
    assert views.grid_view(a.image, a.patch_size).shape[0] >= 448
    original = (np.random.default_rng(2).random((30, 90, 3)) * 255).astype(np.uint8)
    framed = views.crop_preview(figures.to_png(original), (30, 0, 60, 30), whole=False)
    assert framed.shape == (180, 540, 3)  # enlarged by a whole factor (6) to at least 480 px wide
    assert framed[0, 0].sum() < original[0, 0].sum() * 0.5 + 3  # outside the box: dimmed
    whole = views.crop_preview(figures.to_png(original), (0, 0, 90, 30), whole=True)
    assert np.array_equal(whole[::6, ::6], original)  # kept whole: nothing dimmed, nothing framed


def test_history_strands():
    assert [e.kind for e in lecture.history_shown("Language")] == ["NLP", "NLP", "ViT"]
    assert all(e.kind in ("Vision", "ViT") for e in lecture.history_shown("Vision"))
    assert lecture.history_shown(None) == lecture.history_shown("All") == list(lecture.HISTORY)


def test_mask_picker_marks_each_patch_once_and_the_hidden_ones_apart():
    from vit_core.render import whatif_figures as wf

    img = np.zeros((64, 64, 3), np.uint8)
    fig = wf.mask_picker(img, (4, 4), 16, masked=[0, 5, 15])
    pts = fig.data[1]
    assert list(pts.customdata) == list(range(16))  # one marker per patch, in patch order
    assert (pts.x[5], pts.y[5]) == (24, 24)  # patch 5: row 1, column 1
    assert np.flatnonzero(np.asarray(pts.marker.color)).tolist() == [0, 5, 15]
    assert np.asarray(pts.marker.line.width)[[0, 5, 15]].min() > np.asarray(pts.marker.line.width)[1]
    assert not np.asarray(wf.mask_picker(img, (4, 4), 16).data[1].marker.color).any()


def test_figures_built_unchecked_pass_plotly_validation():
    """The figures rebuilt on every click skip plotly's checks (style.unchecked); checked here instead."""
    import plotly.graph_objects as go

    from vit_core.render import whatif_figures as wf

    from types import SimpleNamespace as NS

    from vit_core.render import charts

    img = np.zeros((64, 64, 3), np.uint8)
    leg = NS(name="ViT 10%", steps=[NS(step=i, loss=2.0 / i, train_acc=i / 900) for i in range(1, 900)],
             evals=[NS(step=300, val_acc=0.4), NS(step=600, val_acc=0.6)])
    curves = charts.training_curves([leg, NS(name="CNN", steps=[], evals=[])], {"ViT": "#123456"})
    assert [t.yaxis for t in curves.data] == ["y", "y2", "y2"] and curves.data[0].line.dash == "dot"
    assert len(curves.data[0].x) == len(curves.data[0].y) == 449  # 899 steps, running mean over 2, every 2nd
    for fig in (wf.mask_picker(img, (4, 4), 16, masked=[1, 2]), figures.bar_chart(["a", "b"], np.array([0.7, 0.2])),
                curves):
        again = go.Figure(fig.to_dict())  # validating: a misspelt property raises here
        assert again.to_plotly_json()["data"][0]["type"] == fig.data[0].type
    bad = figures.unchecked([dict(type="bar", x=[1], colour="red")], figures.layout())
    with pytest.raises(ValueError):
        go.Figure(bad.to_dict())
