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

import pytest
from PIL import Image

from tests.support import tiny
from vit_core.analysis import explain
from vit_core.render import handout
from vit_core.analysis import lecture as lec
from vit_core.model import ViTConfig, VisionTransformer, count_params

ROOT = Path(__file__).resolve().parents[2]
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
    a, model = tiny.tiny_analysis(48, 3, 60, 6)
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


