"""AppTest runs of the pages 1 · Patches, 2 · Patch embedding and 3 · Position embeddings.

Each page runs on the default model and sample image; the numbers it shows are checked against
the model and the same cached Analysis, then the main widgets are moved and the numbers must follow.
"""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from pages._ui import site
from tests.support.apptest import rerun, run, shown
from vit_core.analysis import embeddings
from vit_core.analysis import explain
from vit_core.io import loading
from vit_core.analysis import patches

pytestmark = pytest.mark.skipif(
    loading.model_status(site.DEFAULT_SPEC).state == "unavailable",
    reason=f"{site.DEFAULT_SPEC} is not built (make model)",
)


def text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "success", "error", "info", "warning")
             for e in getattr(at, kind)]
    return "\n".join(parts + [f"{m.label}={m.value}" for m in at.metric])


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return found[0]


def png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


# --- 1 · Patches ---------------------------------------------------------------------------------
def test_patches_counts_follow_the_patch_size():
    at = run("patches")
    a, loaded = shown(at)
    H, W = a.image.shape[:2]
    P = loaded.model.cfg.patch_size
    N = (H // P) * (W // P)
    T = N + a.num_prefix_tokens
    assert (H, W) == (loaded.model.cfg.img_size,) * 2
    assert metric(at, "Grid") == f"{H // P} x {W // P}"
    assert metric(at, "Patches N") == f"{N:,}"
    assert metric(at, f"Tokens T = N + {a.num_prefix_tokens}") == f"{T:,}"
    assert metric(at, "Attention scores T²") == f"{T * T:,}"
    assert "This is the patch size of the loaded model." in text(at)
    captions = [c for img in at.get("image") for c in img.captions]  # the token sequence's caption
    assert any(f"T = {N} + {a.num_prefix_tokens} = {T} tokens" in c for c in captions)

    slider = at.select_slider(key="patches_p")
    options = [int(o) for o in slider.options]  # AppTest reports options as text
    assert slider.value == P and P in options
    other = max(options) if P != max(options) else min(options)
    rerun(slider.set_value(other))
    n2 = (H // other) * (W // other)
    assert metric(at, "Patches N") == f"{n2:,}"
    assert metric(at, f"Tokens T = N + {a.num_prefix_tokens}") == f"{n2 + a.num_prefix_tokens:,}"
    assert metric(at, "Attention scores T²") == f"{(n2 + a.num_prefix_tokens) ** 2:,}"
    assert f"The loaded model uses **P = {P}**" in text(at)


def test_patches_upload_and_bad_upload():
    at = run("patches")
    rerun(at.sidebar.radio(key="source").set_value("Upload"))
    rerun(at.file_uploader(key="upload").set_value(("wide.png", png(300, 120), "image/png")))
    t = text(at)
    assert "**Your image**: 300 x 120 pixels" in t
    assert "Resize" in t and "Centre crop" in t
    # something that is not an image: an error, a fallback sample, no traceback
    rerun(at.file_uploader(key="upload").set_value(("notes.png", b"hello, not a picture", "image/png")))
    assert at.error and "could not be used" in at.error[0].value


# --- 2 · Patch embedding ---------------------------------------------------------------------------
def test_patch_embedding_numbers_and_patch_slider():
    at = run("patch_embedding")
    a, loaded = shown(at)
    cfg = loaded.model.cfg
    P, C, D = cfg.patch_size, cfg.in_chans, cfg.embed_dim
    assert metric(at, "Flattened patch") == f"{C} x {P} x {P} = {C * P * P:,}"
    assert metric(at, "Embedding size D") == f"{D:,}"
    diff = float(re.search(r"largest difference between the two is \*\*([0-9.e+-]+)\*\*", text(at)).group(1))
    assert diff < 1e-4 and abs(diff - a.conv_unfold_diff) <= 0.051 * max(a.conv_unfold_diff, 1e-12)
    assert "equal up to float rounding" in text(at)

    n = a.patch_embed.shape[0]
    assert metric(at, "Patch embeddings") == f"{n} x {D}"
    assert metric(at, "+ position embeddings") == f"{a.num_tokens} x {D}"
    before = metric(at, f"Size of x_p E, patch {at.slider(key='emb_patch').value}")
    rerun(at.slider(key="emb_patch").set_value(0))
    after = metric(at, "Size of x_p E, patch 0")
    assert after == f"{np.linalg.norm(a.patch_embed[0]):.2f}"
    assert "Patch 0" in text(at) or "**Patch 0**" in text(at)
    rerun(at.slider(key="emb_patch").set_value(n - 1))
    assert metric(at, f"Size of x_p E, patch {n - 1}") == f"{np.linalg.norm(a.patch_embed[n - 1]):.2f}"
    assert before  # the default patch showed a size too


def test_patch_embedding_view_from_the_url():
    at = run("patch_embedding", emb_patch="3")
    assert at.slider(key="emb_patch").value == 3
    assert any(m.label == "Size of x_p E, patch 3" for m in at.metric)
    at = run("patch_embedding", emb_patch="999999")  # out of range: ignored, no traceback
    assert 0 <= at.slider(key="emb_patch").value


# --- 3 · Position embeddings -----------------------------------------------------------------------
def test_position_embeddings_numbers_and_widgets():
    at = run("position_embeddings")
    _, loaded = shown(at)
    model = loaded.model
    sim = explain.model_figures(model).pos_similarity
    nf = embeddings.neighbour_vs_far(sim, far=5)
    N, gh, gw = sim.shape

    def two(v):  # as the page prints it
        s = f"{v:.2f}"
        return "0.00" if s == "-0.00" else s

    assert metric(at, "Neighbours") == two(nf["near"])
    assert metric(at, "5 or more cells apart") == two(nf["far"])
    assert f"mean cosine similarity **{two(nf['near'])}**" in text(at)
    assert np.allclose(sim.reshape(N, N), sim.reshape(N, N).T, atol=1e-5)
    assert np.allclose(np.diagonal(sim.reshape(N, N)), 1, atol=1e-5)

    rerun(at.slider(key="pos_patch").set_value(0))
    size = at.select_slider(key="pos_size").value
    g = size // model.cfg.patch_size
    j = embeddings.map_patch(0, (gh, gw), (g, g))
    assert f"The resampled position {j} sits where position 0 was." in text(at)
    rerun(at.slider(key="pos_patch").set_value(N - 1))
    assert f"where position {N - 1} was." in text(at)

    rerun(at.select_slider(key="pos_size").set_value(model.cfg.img_size))
    assert "is the size this model was trained at" in text(at)
    bigger = max(int(o) for o in at.select_slider(key="pos_size").options)
    rerun(at.select_slider(key="pos_size").set_value(bigger))
    new = embeddings.resized_similarity(model, (bigger // model.cfg.patch_size,) * 2)
    assert f"{(bigger // model.cfg.patch_size) ** 2} patches instead of {N}" in text(at)
    assert two(embeddings.neighbour_vs_far(new)["near"]) in text(at)
    rerun(at.radio(key="pos_scale").set_value("each tile its own"))


def test_page_helpers():
    assert patches.patch_size_options(224, 224, lo=4, hi=64) == [4, 7, 8, 14, 16, 28, 32, 56]
    t = patches.token_counts(224, 224, 16)
    assert (t["N"], t["T"], t["T2"]) == (196, 197, 38_809)
    assert patches.token_counts(224, 224, 1)["T"] ** 2 > 2_500_000_000
    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    tiles = patches.patch_tiles(img, 4)
    assert tiles.shape == (4, 4, 4, 3) and np.array_equal(tiles[1], img[:4, 4:])
    # an ideal 2-D embedding: neighbours similar, far positions not
    r, c = np.divmod(np.arange(64), 8)
    emb = np.stack([np.cos(r), np.sin(r), np.cos(c), np.sin(c)], 1)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sim = (emb @ emb.T).reshape(64, 8, 8)
    nf = embeddings.neighbour_vs_far(sim, far=5)
    assert nf["near"] > nf["far"] and nf["n_near"] == 2 * 8 * 7
    assert np.isnan(embeddings.neighbour_vs_far(np.eye(16).reshape(16, 4, 4), far=5)["far"])  # 4 x 4: nothing 5 apart
    assert embeddings.map_patch(0, (14, 14), (28, 28)) == 0 and embeddings.map_patch(195, (14, 14), (7, 7)) == 48
