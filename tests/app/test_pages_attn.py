"""AppTest runs of the pages 4 · Self-attention, 5 · Attention maps and 6 · Prediction.

Each page runs on the default model and sample image; the numbers it shows are checked against
the same cached Analysis, then the main widgets are moved and the shown numbers must follow.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from pages._ui import heavy, sidebar
from pages._ui.site import SAMPLES
from tests.support.apptest import rerun, run, shown, square_png, upload
from vit_core.analysis import maps
from vit_core.analysis import attention_views
from vit_core.analysis import explain
from vit_core.io import images


def text(at: AppTest) -> str:
    """Everything the page says: text elements, metrics and image captions."""
    parts = [e.value for kind in ("markdown", "caption", "success", "error", "info") for e in getattr(at, kind)]
    captions = [c for img in at.get("image") for c in img.captions]
    return "\n".join(parts + captions + [f"{m.label}={m.value}" for m in at.metric])


def a_sha(at: AppTest) -> str:
    """SHA-256 of the sample the page shows (its cache key)."""
    return images.image_sha256((SAMPLES / at.selectbox(key="sample").value).read_bytes())


def number(pattern: str, s: str) -> float:
    m = re.search(pattern, s)
    assert m, f"{pattern!r} not found in:\n{s}"
    return float(m.group(1).replace(",", ""))


# --- 4 · Self-attention ----------------------------------------------------------------------
def test_self_attention_numbers_and_widgets():
    at = run("self_attention")
    a, loaded = shown(at)
    n, T = a.num_prefix_tokens, a.num_tokens
    assert number(r"within \*\*([0-9.e+-]+)\*\*", at.success[0].value) < 1e-5
    assert number(r"two: \*\*([0-9.e+-]+)\*\*", text(at)) < 1e-5
    assert "Query: **token 0 = [CLS]** · layer 1 · head 1" in text(at)
    s = attention_views.attention_step(a, explain.layer_qkv(loaded.model, a, 0), 0, 0, 0,
                                       explain.layer_attention(loaded.model, a, 0))
    assert at.metric[0].value == f"{s.scores.max():.2f}"
    assert f"T = {T}" in text(at)

    layer, head, query = a.depth - 1, a.num_heads - 1, n + a.grid[1] + 1  # patch at row 1, column 1 (from 0)
    at.slider(key="sa_layer").set_value(layer + 1)
    at.slider(key="sa_head").set_value(head + 1)
    at.slider(key="sa_q").set_value(query)
    rerun(at)
    own = explain.layer_attention(loaded.model, a, layer)
    s2 = attention_views.attention_step(a, explain.layer_qkv(loaded.model, a, layer), layer, head, query, own)
    assert (f"Query: **token {query} = patch {a.grid[1] + 1} (row 1, column 1)** · layer {a.depth} · "
            f"head {a.num_heads}") in text(at)
    assert at.metric[0].value == f"{s2.scores.max():.2f}" and s2.softmax_diff < 1e-5
    assert f"attn[layer {a.depth}, head {a.num_heads}, query {query}]" in at.success[0].value
    assert np.array_equal(s2.stored, own[head, query]) and s2.out_diff < 1e-5
    assert np.abs(s2.stored - a.attn[layer, head, query]).max() < 1e-3  # the analysis's float16 copy
    # the analysis keeps no q, k, v: the page recomputed the two layers shown, once each, into the
    # shared results cache (a class on the same layer shares them)
    spec, sha = at.selectbox(key="model").value, a_sha(at)
    for l in (0, layer):
        kept = heavy.LIGHT.get(("qkv", spec, sha, l), lambda: pytest.fail(f"layer {l} not cached"))
        assert all(np.array_equal(x, y) for x, y in zip(kept, explain.layer_qkv(loaded.model, a, l)))
        kept = heavy.LIGHT.get(("attn", spec, sha, l), lambda: pytest.fail(f"layer {l}'s attention not cached"))
        assert np.array_equal(kept, explain.layer_attention(loaded.model, a, l))


def test_self_attention_cost_calculator():
    at = run("self_attention")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tokens T (patches + [CLS])"] == "197"
    assert metrics["Attention entries T²"] == "38,809"
    assert metrics["Pixels as tokens: (3·S·S)²"] == "22,658,678,784"
    assert "**22.7 billion**" in text(at)
    at.number_input(key="sa_patch").set_value(32)
    rerun(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tokens T (patches + [CLS])"] == "50" and metrics["Attention entries T²"] == "2,500"
    at.number_input(key="sa_patch").set_value(30)  # does not divide 224: a warning, not a crash
    rerun(at)
    assert at.warning and "cropped" in at.warning[0].value


# --- 5 · Attention maps ----------------------------------------------------------------------
def test_attention_maps_distance_and_rollout():
    at = run("attention")
    a, _ = shown(at)
    L, n = a.depth, a.num_prefix_tokens
    body = text(at)
    assert f"L1 (input side) to L{L}" in body
    assert f"Layer 1 spans **{a.distance[0].min():.1f}–{a.distance[0].max():.1f} px**" in body
    assert "**one image**" in body and "**not** re-normalised" in body

    at.toggle(key="att_renorm").set_value(True)
    rerun(at)
    d = maps.mean_attention_distance(torch.from_numpy(a.attn), a.grid, a.patch_size, n, renormalize=True)
    body2 = text(at)
    assert f"Layer 1 spans **{float(d[0].min()):.1f}–{float(d[0].max()):.1f} px**" in body2
    assert "rows **re-normalised**" in body2

    held = number(r"still holds \*\*([0-9.]+)%\*\*", body2)
    assert held == pytest.approx(100 * a.rollout[-1][0, 0], abs=0.051)
    at.slider(key="att_roll").set_value(1)
    at.selectbox(key="att_fusion").set_value("max")
    at.slider(key="att_discard").set_value(0.5)
    rerun(at)
    r = explain.rollout_with(a, "max", 0.5)
    held1 = number(r"After 1 layer\(s\), \[CLS\] still holds \*\*([0-9.]+)%\*\*", text(at))
    assert held1 == pytest.approx(100 * r[0][0, 0], abs=0.051) and held1 != held
    assert "**Rollout** after layers 1–1 (max fusion, discard 50%)" in text(at)


def test_attention_query_layer_head():
    at = run("attention")
    a, _ = shown(at)
    n = a.num_prefix_tokens

    def caption():
        return next(m.value for m in at.markdown if "** in layer " in m.value)

    first = caption()
    assert f"in layer {a.depth}, mean of heads" in first
    at.slider(key="att_layer").set_value(1)
    at.selectbox(key="att_head").set_value("1")
    at.slider(key="att_q").set_value(0)
    rerun(at)
    second = caption()
    assert second.startswith("**[CLS]** in layer 1, head 1") and second != first
    row = a.attn[0, 0, 0]
    top = int(row[n:].argmax()) + n
    assert f"({row[top]:.1%}) on {attention_views.token_label(a, top)}" in second


# --- 6 · Prediction --------------------------------------------------------------------------
def test_prediction_topk_lens_and_relevance():
    at = run("prediction")
    a, loaded = shown(at)
    if a.probs.size == 0:
        assert "feature extractor" in text(at)
        return
    order = np.argsort(a.probs)[::-1]
    names = loaded.class_names
    top1 = at.metric[0]
    assert top1.value == names[order[0]] and top1.delta == f"{a.probs[order[0]]:.1%} probability"
    assert f"Runner-up: **{names[order[1]]}** ({a.probs[order[1]]:.1%})" in text(at)
    assert number(r"max difference ([0-9.e+-]+)\)", at.success[0].value) < 1e-5
    assert at.selectbox(key="pred_c1").value == order[0] and at.selectbox(key="pred_c2").value == order[1]
    corr = number(r"maps \(.*?\): \*\*([-0-9.]+)\*\*", text(at))

    at.selectbox(key="pred_c2").set_value(int(order[-1]))
    rerun(at)
    assert f"**B: {names[order[-1]]}** ({a.probs[order[-1]]:.1%})" in text(at)
    corr2 = number(r"maps \(.*?\): \*\*([-0-9.]+)\*\*", text(at))
    assert f"{names[order[0]]} vs. {names[order[-1]]}" in text(at) and corr2 != corr
    at.selectbox(key="pred_c2").set_value(int(order[0]))
    rerun(at)
    assert "the same class twice" in text(at) and number(r"\*\*([-0-9.]+)\*\* \(1 = identical", text(at)) == 1.0


def test_prediction_k_slider():
    at = run("prediction")
    a, _ = shown(at)
    if a.probs.size == 0:
        pytest.skip("feature-only default model")
    at.slider(key="pred_k").set_value(1)
    rerun(at)
    assert "Runner-up" not in text(at) and "Prediction" in text(at)


# --- uploads ---------------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["self_attention", "attention", "prediction"])
def test_uploaded_and_bad_images(page):
    at = run(page)
    before = text(at)
    upload(at, "red.png", square_png("red"))
    assert not at.error and text(at) != before
    at.sidebar.file_uploader[0].set_value(("broken.png", b"not an image at all", "image/png"))
    rerun(at)
    assert at.error and "could not be used" in at.error[0].value


def test_an_upload_leaves_the_shared_caches_when_its_tab_closes(monkeypatch):
    """The sidebar notes the photo with its session; once that session is closed, its analysis goes."""
    from pages._ui import uploads

    monkeypatch.setattr(uploads, "_BY_SESSION", {})
    at = run("attention")
    data = square_png("blue")
    upload(at, "blue.png", data)
    sha = images.image_sha256(data)
    assert not at.exception and uploads.tracked() == 1
    assert any(uploads.mentions(k, {sha}) for k in list(heavy.ANALYSES._items))
    assert uploads.release_closed(alive=lambda sid: True) == 0  # the tab is open: kept
    assert uploads.release_closed(alive=lambda sid: False) >= 1
    assert not any(uploads.mentions(k, {sha}) for k in list(heavy.ANALYSES._items))
    rerun(at)  # the tab came back: the photo is analysed again and noted again
    assert not at.exception and uploads.tracked() == 1


# --- unusual models: no class head, no [CLS] token ---------------------------------------------
def _tiny(tmp_path, name: str, **cfg) -> str:
    from vit_core import ViTConfig
    from vit_core import VisionTransformer
    from vit_core.io import loading

    torch.manual_seed(0)
    vit = ViTConfig(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, **cfg)
    n = vit.num_classes
    dc = {"input_size": [3, 32, 32], "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.5] * 3,
          "crop_pct": 1.0, "crop_mode": "center"}
    path = loading.save_model(tmp_path / f"{name}.safetensors", VisionTransformer(vit).eval(),
                              [f"thing {i}" for i in range(n)], dc)
    return f"file:{path}"


@pytest.mark.parametrize("kind", ["features", "no_cls"])
def test_pages_with_unusual_models(tmp_path, monkeypatch, kind):
    cfg = {"num_classes": 0} if kind == "features" else {"num_classes": 3, "class_token": False,
                                                        "global_pool": "avg"}
    spec = _tiny(tmp_path, kind, **cfg)
    monkeypatch.setattr(sidebar, "model_choices", lambda: [(spec, f"tiny {kind}")])
    monkeypatch.setattr(sidebar, "default_spec", lambda: spec)
    for page in ("self_attention", "attention", "prediction"):
        at = run(page)
        body = text(at)
        if page == "prediction":
            assert ("feature extractor" in body) if kind == "features" else ("no [CLS] token" in body)
        if page == "attention" and kind == "no_cls":
            assert "no [CLS] token" in body
        if page == "self_attention":
            assert number(r"within \*\*([0-9.e+-]+)\*\*", at.success[0].value) < 1e-5
