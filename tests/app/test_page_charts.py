"""The explainer pages' plotly charts as the browser gets them: right view, legible in the hall.

Charts are cached across sessions under a key of everything they depend on (``cache.chart``):
moving a widget must change the chart it drives, and moving it back must give the same chart
again. In presentation mode every tick label, title, legend, bar label, colour bar and
annotation must be at least the body size (~23.5 px there) and dark, as read from the JSON spec
(heatmap cell labels only large: plotly colours them against their cell).
"""
from __future__ import annotations

import base64
import io
import json

import PIL.Image

import pytest
from streamlit.testing.v1 import AppTest

from pages._ui import site
from tests.support.apptest import ROOT, rerun, run
from vit_core.io import loading

pytestmark = pytest.mark.skipif(
    loading.model_status(site.DEFAULT_SPEC).state == "unavailable",
    reason=f"{site.DEFAULT_SPEC} is not built (make model)",
)

EXPLAINER = ("overview", "history", "pixels_as_tokens", "patches", "patch_embedding", "position_embeddings",
             "self_attention", "attention", "prediction", "vit_in_numbers", "appendix")
BODY_PX = 23.5  # presentation mode's body text (present.PRESENT_CSS: 21 px x 1.12rem)
DARK = {"#000", "#000000", "#111", "#111111", "black"}


def charts(at: AppTest) -> dict[str, dict]:
    """Every plotly chart on the page: its key -> its spec (the JSON the browser gets)."""
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def font_problems(spec: dict, minimum: float) -> list[str]:
    """Every text part of a plotly spec smaller than ``minimum`` px, or not dark."""
    bad: list[str] = []

    def check(where: str, font: dict | None, colour: bool = True) -> None:
        font = font or {}
        if font.get("size") is None or font["size"] < minimum:
            bad.append(f"{where}: size {font.get('size')}")
        if colour and str(font.get("color", "")).lower() not in DARK:
            bad.append(f"{where}: colour {font.get('color')}")

    lay = spec["layout"]
    check("layout.font", lay.get("font"))
    if (lay.get("title") or {}).get("text"):
        check("title", lay["title"].get("font"))
    for name, ax in lay.items():
        if name.startswith(("xaxis", "yaxis")):
            check(f"{name} ticks", ax.get("tickfont"))
            if (ax.get("title") or {}).get("text"):
                check(f"{name} title", ax["title"].get("font"))
    if "legend" in lay:
        check("legend", lay["legend"].get("font"))
    for i, note in enumerate(lay.get("annotations", [])):
        check(f"annotation {i}", note.get("font"))
    for i, tr in enumerate(spec["data"]):
        if tr.get("text") is not None or tr.get("texttemplate"):
            # heatmap cell labels keep plotly's contrast colour: white on dark cells, black on light
            check(f"trace {i} text", tr.get("textfont"), colour=tr["type"] != "heatmap")
        if tr["type"] in ("heatmap", "contour") and tr.get("showscale", True):
            bar = tr.get("colorbar") or {}
            check(f"trace {i} colour bar ticks", bar.get("tickfont"))
            if (bar.get("title") or {}).get("text"):
                check(f"trace {i} colour bar title", bar["title"].get("font"))
    return bad


@pytest.mark.parametrize("page", EXPLAINER)
def test_presentation_mode_charts_are_legible(page):
    at = run(page, present="1")
    specs = charts(at)
    assert specs, f"{page} shows no plotly chart"
    bad = {key: p for key, spec in specs.items() if (p := font_problems(spec, BODY_PX))}
    assert not bad, bad


def test_normal_mode_keeps_laptop_sizes():
    at = run("patch_embedding")
    for key, spec in charts(at).items():
        assert not font_problems(spec, 16), key
        sizes = [spec["layout"]["font"]["size"], spec["layout"]["xaxis"]["tickfont"]["size"]]
        assert max(sizes) <= 18, (key, sizes)
    present = charts(run("patch_embedding", present="1"))
    assert present["emb_flat"]["layout"]["xaxis"]["tickfont"]["size"] >= 24


def test_pixels_patch_ticks_do_not_collide():
    """14 and 16 (and 28 and 32) sit 0.06 decades apart on the log axis: never both labelled."""
    for present in ("0", "1"):
        ticks = charts(run("pixels_as_tokens", present=present))["px_curve"]["layout"]["xaxis"]["tickvals"]
        assert 16 in ticks and not {14, 16} <= set(ticks) and not {28, 32} <= set(ticks), ticks


def test_patch_embedding_charts_follow_the_patch():
    at = run("patch_embedding", emb_patch="3")
    first = charts(at)
    rerun(at.slider(key="emb_patch").set_value(5))
    moved = charts(at)
    for key in ("emb_pick", "emb_flat", "emb_vec", "emb_matrix", "emb_norms"):
        assert moved[key] != first[key], key
    assert "patch 5" in moved["emb_flat"]["layout"]["title"]["text"]
    rerun(at.slider(key="emb_patch").set_value(3))
    assert charts(at) == first  # the same view: the same (shared) figures


def test_position_charts_follow_the_position_and_the_scale():
    at = run("position_embeddings", pos_patch="0")
    first = charts(at)
    rerun(at.slider(key="pos_patch").set_value(7))
    moved = charts(at)
    for key in ("pos_pick", "pos_big", "pos_resize_a", "pos_resize_b"):
        assert moved[key] != first[key], key
    assert moved["pos_dist"] == first["pos_dist"]  # does not depend on the position
    assert "Position 7" in moved["pos_big"]["layout"]["title"]["text"]
    # The picker's mosaic of flat tiles travels as a lossless PNG, a real one of the mosaic's size.
    src = moved["pos_pick"]["data"][0]["source"]
    assert src.startswith("data:image/png;base64,")
    with PIL.Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        assert im.format == "PNG" and im.width > 400
    rerun(at.radio(key="pos_scale").set_value("each tile its own"))
    own = charts(at)
    assert own["pos_big"]["data"][0]["zmin"] != -1 and own["pos_pick"] != moved["pos_pick"]


def test_narrative_charts_follow_their_widgets():
    at = run("history", hist_event="DINO")
    before = charts(at)["hist_timeline"]
    rerun(at.select_slider(key="hist_event").set_value("BERT"))
    assert charts(at)["hist_timeline"] != before
    at = run("pixels_as_tokens")
    before = charts(at)
    rerun(at.select_slider(key="px_patch").set_value(8))
    after = charts(at)
    assert after["px_bars"] != before["px_bars"] and after["px_curve"] != before["px_curve"]
    at = run("vit_in_numbers")
    before = charts(at)
    rerun(at.selectbox(key="num_dataset").set_value("CIFAR-100"))
    after = charts(at)
    assert "CIFAR-100" in after["num_scatter"]["layout"]["title"]["text"] and after["num_bars"] != before["num_bars"]


def test_attention_charts_follow_the_query():
    at = run("self_attention")
    before = charts(at)
    rerun(at.slider(key="sa_layer").set_value(2))
    after = charts(at)
    assert after["sa_qk"] != before["sa_qk"] and after["sa_pick"] == before["sa_pick"]  # the query did not move
    at = run("appendix", app_layer="1", app_head="1")
    before = charts(at)["app_heat"]
    rerun(at.slider(key="app_head").set_value(2))
    assert charts(at)["app_heat"] != before


def test_every_explainer_page_is_listed():
    pages = {p[0] for p in site.PAGES}
    assert {f"pages/{p}.py" for p in EXPLAINER} <= pages
    assert all((ROOT / "pages" / f"{p}.py").exists() for p in EXPLAINER)
