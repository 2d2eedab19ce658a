"""Lecture mode: the calculators, the handout, the narrative pages, presentation mode and deep links.

AppTest runs each narrative page on the default model and sample image and checks the numbers it
shows; every page of the talk must run in presentation mode (?present=1) with the chrome-hiding CSS
and the Previous/Next buttons; widgets bound to the URL must come back from a deep link.
"""
from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from pages import _common, _present
from vit_core import explain, handout
from vit_core import lecture as lec
from vit_core.model import ViTConfig, VisionTransformer, count_params

ROOT = Path(__file__).resolve().parent.parent
NARRATIVE = ("history", "pixels_as_tokens", "vit_in_numbers", "critics_impact", "appendix")


# --- calculators -----------------------------------------------------------------------------


def test_pixels_against_patches_the_lecture_numbers():
    assert lec.pixel_tokens(224) == 3 * 224 * 224 == 150_528
    assert lec.attention_entries(lec.pixel_tokens(224)) == 22_658_678_784
    assert lec.human_count(22_658_678_784) == "22.7 billion"
    assert lec.num_tokens(224, 16) == 197 and lec.attention_entries(197) == 38_809
    assert lec.pixel_tokens(224, per_value=False) == 50_176
    assert lec.num_tokens(224, 14) == 257 and lec.num_tokens(384, 16) == 577
    assert lec.num_tokens(224, 16, cls_token=False) == 196
    assert lec.num_patches(230, 16) == 196  # the remainder is cropped
    with pytest.raises(ValueError):
        lec.num_patches(224, 0)


def test_attention_memory():
    assert lec.attention_bytes(197) == 38_809 * 4
    assert lec.attention_bytes(197, heads=12, layers=12) == 38_809 * 4 * 144  # 22.4 MB, ViT-B/16
    assert lec.human_bytes(lec.attention_bytes(197, 12, 12)) == "22.4 MB"
    assert lec.human_bytes(lec.attention_bytes(150_528)) == "90.6 GB"
    assert lec.human_bytes(999) == "999 B" and lec.human_bytes(1500) == "1.5 KB"


def test_layer_flops_by_hand_and_scaling():
    f = lec.layer_flops(tokens=2, width=3, mlp=12)
    assert (f.qkv, f.scores, f.weighted_sum, f.out_proj, f.mlp) == (108, 24, 24, 36, 288)
    assert f.linear == 432 and f.quadratic == 48 and f.total == 480
    assert lec.layer_flops(4, 3, 12).quadratic == 4 * f.quadratic  # T^2
    assert lec.layer_flops(4, 3, 12).linear == 2 * f.linear  # T
    assert lec.layer_flops(10, 8).mlp == lec.layer_flops(10, 8, 32).mlp  # MLP defaults to 4D
    # ViT-B/16: about 17.6 G multiply-adds per image, i.e. 35 GFLOPs
    total = 12 * lec.layer_flops(197, 768, 3072).total
    assert 34e9 < total < 36e9


def test_param_count_is_exact_and_matches_table_1():
    cfg = ViTConfig(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=3, num_classes=7)
    model = VisionTransformer(cfg)
    assert lec.param_count(2, 24, 96, patch_size=8, image_size=32, num_classes=7) == count_params(model)
    for v in lec.VARIANTS:
        assert abs(lec.param_count(v.layers, v.width, v.mlp) / 1e6 - v.params_m) / v.params_m < 0.015, v


def test_cost_calculator():
    assert lec.training_cost(2500, 0.5) == 30_000
    assert lec.training_cost(lec.CORE_DAYS["vit_h14_jft"]) == 30_000  # default price 0.5
    assert lec.training_cost(2500, 1.0) == 60_000
    assert lec.training_cost(9900, 0.5) == 118_800
    with pytest.raises(ValueError):
        lec.training_cost(-1, 0.5)


def test_paper_tables():
    assert [(v.name, v.layers, v.width, v.mlp, v.heads, v.params_m) for v in lec.VARIANTS] == [
        ("ViT-Base", 12, 768, 3072, 12, 86), ("ViT-Large", 24, 1024, 4096, 16, 307),
        ("ViT-Huge", 32, 1280, 5120, 16, 632)]
    assert lec.variant("B").width == 768 and lec.variant("vit-huge").heads == 16
    assert lec.RESULTS["ImageNet"]["vit_h14_jft"] == 88.55 and lec.RESULTS["VTAB (19 tasks)"]["bit_l"] == 76.29
    assert lec.CORE_DAYS == dict(vit_h14_jft=2500, vit_l16_jft=680, vit_l16_i21k=230, bit_l=9900,
                                 noisy_student=12300)
    rows = lec.results_rows()
    assert len(rows) == 2 * 5 + 5 * 4  # Noisy Student only on ImageNet and ReaL
    assert all(set(r) >= {"dataset", "model", "accuracy", "core_days", "family"} for r in rows)


def test_history_is_in_order_and_complete():
    dates = [e.date for e in lec.HISTORY]
    assert dates == sorted(dates)
    names = " ".join(e.name for e in lec.HISTORY)
    for must in ("Attention Is All You Need", "BERT", "ViT", "DeiT", "Swin", "DINO", "MAE"):
        assert must in names
    assert all(e.line and e.who for e in lec.HISTORY)


# --- handout ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_analysis():
    torch.manual_seed(0)
    cfg = ViTConfig(img_size=48, patch_size=8, embed_dim=24, depth=3, num_heads=3, num_classes=6)
    model = VisionTransformer(cfg).eval()

    def transform(img: Image.Image) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(img.convert("RGB").resize((48, 48)), np.float32) / 255)
        return (x.permute(2, 0, 1) - 0.5) / 0.5

    img = Image.fromarray((np.random.default_rng(0).random((60, 60, 3)) * 255).astype(np.uint8))
    a = explain.analyze(model, transform, {"mean": (0.5,) * 3, "std": (0.5,) * 3}, img)
    return a, explain.model_figures(model)


def test_handout_is_well_formed_with_a_figure_for_every_step(tiny_analysis):
    a, mf = tiny_analysis
    names = ["circle", "square", "triangle", "star", "cross", "ring & <b>bold</b>"]
    page = handout.build_handout(a, mf, names, model_description="tiny <test> model", image_name="cat&dog<1>.png")
    assert page.startswith("<!DOCTYPE html>")
    root = ET.fromstring(page.split("\n", 1)[1])  # well-formed: parses as XML
    sections = {s.get("id"): s for s in root.iter("section")}
    assert list(sections) == ["image", "patches", "embedding", "positions", "attention", "rollout",
                              "prediction", "lens"]
    for key, sec in sections.items():
        imgs = list(sec.iter("img"))
        assert imgs, f"no figure in step {key}"
        for img in imgs:
            src = img.get("src")
            assert src.startswith("data:image/png;base64,")
            png = base64.b64decode(src.split(",", 1)[1], validate=True)
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
            assert Image.open(io.BytesIO(png)).size[0] >= 32
            assert img.get("alt")
        assert sec.find("h2") is not None and list(sec.iter("figcaption"))
    assert "cat&amp;dog&lt;1&gt;.png" in page and "<test>" not in page  # names are escaped
    assert "http://" not in page.replace("https://arxiv.org", "")  # self-contained: nothing fetched
    assert "<script" not in page


# --- narrative pages (AppTest) -----------------------------------------------------------------


def run(page: str, params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=90)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "latex", "subheader", "title") for e in getattr(at, kind)]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    parts += [df.value.to_string() for df in list(at.dataframe) + list(at.table)]
    return "\n".join(str(p) for p in parts)


def test_pixels_page_numbers_follow_the_widgets():
    at = run("pixels_as_tokens")
    t = text(at)
    assert "22,658,678,784" in t and "38,809" in t and "22.7 billion" in t
    assert at.select_slider(key="px_size").value == 224 and at.select_slider(key="px_patch").value == 16
    table = at.table[0].value
    assert list(table["Tokens"]) == ["150,528", "50,176", "197"]
    assert table["Memory, 1 head"].iloc[2] == "155.2 KB" and table["Memory, 1 head"].iloc[0] == "90.6 GB"
    assert table["Memory, 12 heads x 12 layers"].iloc[2] == "22.4 MB"
    assert table["FLOPs per layer"].iloc[2] == "2.9 GFLOPs"
    at.select_slider(key="px_patch").set_value(32)
    at.select_slider(key="px_size").set_value(512)
    at.run()
    assert list(at.table[0].value["Tokens"])[2] == f"{(512 // 32) ** 2 + 1:,}"  # 257
    assert list(at.table[0].value["Tokens"])[0] == f"{3 * 512 * 512:,}"


def test_numbers_page_tables_and_cost():
    at = run("vit_in_numbers")
    t = text(at)
    for value in ("88.55", "87.76", "85.30", "87.54", "99.50", "77.63"):
        assert value in t, value
    assert "USD 30,000" in t
    assert "6 of 7 benchmarks" in t and "15 x less" in t
    at.number_input(key="num_price").set_value(1.0)
    at.run()
    t = text(at)
    assert "USD 60,000" in t and "USD 30,000" not in t
    at.selectbox(key="num_model").set_value("bit_l")
    at.run()
    assert any(m.value == "USD 237,600" for m in at.metric)
    at.selectbox(key="num_dataset").set_value("CIFAR-100")
    at.run()
    assert not at.exception


def test_history_critics_appendix_pages():
    at = run("history")
    t = text(at)
    for name in ("Attention Is All You Need", "BERT", "DeiT", "Swin", "DINO", "MAE", "ICLR 2021"):
        assert name in t
    assert at.get("plotly_chart")
    at = run("critics_impact")
    t = text(at)
    assert "USD 30,000" in t and "Smarter patching" in t and "Came true" in t
    assert "train" in t.lower()
    at = run("appendix")
    cfg = _common.get_model(at.selectbox(key="model").value).model.cfg
    T = cfg.num_patches + cfg.num_prefix_tokens
    assert f"{T} x {T}" in text(at)
    diff = next(m for m in at.metric if m.label.startswith("Largest difference"))
    assert float(diff.value) < 1e-4


def test_deep_link_restores_bound_widgets():
    at = run("pixels_as_tokens", {"px_size": "512", "px_patch": "8", "px_model": "ViT-Huge"})
    assert at.select_slider(key="px_size").value == 512
    assert at.select_slider(key="px_patch").value == 8
    assert at.selectbox(key="px_model").value == "ViT-Huge"
    assert list(at.table[0].value["Tokens"])[2] == f"{64 * 64 + 1:,}"
    at = run("history", {"hist_event": "DINO", "hist_show": "Vision"})
    assert at.select_slider(key="hist_event").value == "DINO"
    at = run("vit_in_numbers", {"num_price": "2.0", "num_dataset": "VTAB (19 tasks)"})
    assert at.number_input(key="num_price").value == 2.0 and "USD 120,000" in text(at)
    at = run("appendix", {"app_layer": "2", "app_head": "2"})
    assert at.slider(key="app_layer").value == 2 and at.slider(key="app_head").value == 2


# --- presentation mode -----------------------------------------------------------------------


def _html(at: AppTest) -> str:
    return "\n".join(e.proto.body for e in at.get("html"))


@pytest.mark.parametrize("entry", [p for p in _common.PAGES if (ROOT / p[0]).exists()], ids=lambda p: p[2])
def test_every_page_runs_in_presentation_mode(entry):
    at = AppTest.from_file(str(ROOT / entry[0]), default_timeout=120)
    at.query_params["present"] = "1"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _present.CSS_MARKER in _html(at)
    assert 'data-testid="stSidebar"' in _html(at) and "stHeader" in _html(at)
    prev, nxt = at.button(key="_present_prev"), at.button(key="_present_next")
    pages = _present.talk()
    assert prev.disabled == (entry == pages[0]) and nxt.disabled == (entry == pages[-1])
    assert at.toggle(key="_present_toggle").value is True


def test_normal_mode_has_no_presentation_css_and_offers_share_and_handout():
    at = run("history")
    assert _present.CSS_MARKER not in _html(at)
    assert at.toggle(key="_present_toggle").value is False
    assert not [b for b in at.button if b.key in ("_present_prev", "_present_next")]
    at.toggle(key="_present_toggle").set_value(True)
    at.run()
    assert at.query_params["present"] == ["1"] or at.query_params["present"] == "1"
    assert _present.CSS_MARKER in _html(at)
    at.button(key="_present_exit").click()
    at.run()
    assert "present" not in at.query_params and _present.CSS_MARKER not in _html(at)
    imgs = at.get("image")
    assert imgs  # the QR code
    codes = [c.value for c in at.code]
    assert any(c.startswith("http://") and "/history" in c for c in codes)


def test_next_and_previous_walk_the_talk_keeping_the_params():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["present"] = "1"
    at.query_params["sample"] = "shapes-star.png"
    at.switch_page("pages/history.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    model = at.selectbox(key="model").value
    assert at.selectbox(key="sample").value == "shapes-star.png"
    at.button(key="_present_next").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value.startswith("Why not pixels")
    assert "present" in at.query_params
    assert at.selectbox(key="model").value == model
    assert at.selectbox(key="sample").value == "shapes-star.png"  # the same image, page after page
    at.button(key="_present_prev").click()
    at.run()
    assert at.title[0].value == "A brief history"


def test_share_url_drops_presentation_mode():
    class FakeParams(dict):
        def get_all(self, k):
            v = self[k]
            return v if isinstance(v, list) else [v]
    orig = _present.st.query_params
    try:
        _present.st.query_params = FakeParams(present="1", sample="a b.png", att_layer="3")
        url = _present.share_url(_common.PAGES[1], override_base="192.168.1.5:8501")
    finally:
        _present.st.query_params = orig
    assert url == "http://192.168.1.5:8501/history?sample=a+b.png&att_layer=3"
    assert _present.qr_png(url)[:8] == b"\x89PNG\r\n\x1a\n"
