"""The Overview's walk (analysis.walk, render.walk): the model's own tensors, a small figure, legible.

The walk claims to show the real numbers of one image in one model: the token row must equal the
model's patch embedding, the encoder input its position-embedded tokens, each block's row the
trace's tokens, and the last frame's top class the model's own argmax.
"""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pages._ui.site import SAMPLES
from tests.support.tiny import tiny_analysis
from vit_core.analysis import explain, walk
from vit_core.io import images
from vit_core.model import ViTConfig, VisionTransformer
from vit_core.render import walk as walk_view

DARK = {"#000", "#000000", "#111", "#111111", "black"}
MAX_JSON = 1_500_000  # bytes: the figure travels to every student's browser


@pytest.fixture(scope="module")
def arrow(bundled):
    """(Walk, Analysis, normalised input (1, 3, H, W), LoadedModel) for the arrow sample."""
    img = images.load_image((SAMPLES / "shapes-arrow.png").read_bytes())
    a = explain.analyze(bundled.model, bundled.transform, bundled.data_config, img)
    x = bundled.transform(img).unsqueeze(0)  # (1, 3, H, W)
    return walk.walk(a, bundled.model), a, x, bundled


def test_shapes(arrow):
    w, a, _, loaded = arrow
    cfg = loaded.model.cfg
    gh, gw = cfg.grid_size
    N, T, k = gh * gw, gh * gw + 1, len(w.blocks)
    D_shown = len(w.dims)
    assert w.grid == (gh, gw) and w.num_patches == N and w.num_tokens == T
    assert w.pixels.shape == (16, N, 3) and w.pixels.dtype == np.uint8  # 4 x 4 pixels per patch
    assert 8 <= D_shown <= cfg.embed_dim and np.all(np.diff(w.dims) > 0) and w.dims[-1] < cfg.embed_dim
    assert w.patch_embed.shape == (N, D_shown)
    assert w.prefixed.shape == w.pos_embed.shape == w.encoder_in.shape == w.final.shape == (T, D_shown)
    assert w.block_out.shape == (k, T, D_shown) and w.cls_attn.shape == (k, gh, gw)
    assert w.lens.shape == (k, cfg.num_classes) and w.probs.shape == (cfg.num_classes,)
    assert w.rollout.shape == (gh, gw) and w.reads_cls and w.depth == cfg.depth


def test_rows_are_the_models_own_tensors(arrow):
    w, a, x, loaded = arrow
    model, d = loaded.model, w.dims
    with torch.no_grad():
        emb = model.patch_embed(x)[0]  # (N, D): the model's patch embedding output
        tr = model.trace(x)
    np.testing.assert_allclose(w.patch_embed, emb[:, d].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w.prefixed[0], model.cls_token[0, 0, d].detach().numpy())
    np.testing.assert_allclose(w.pos_embed, model.pos_embed[0][:, d].detach().numpy())
    # no pre-norm in this model: the encoder's input is exactly [CLS; x_p E] + E_pos
    np.testing.assert_allclose(w.encoder_in, w.prefixed + w.pos_embed, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w.encoder_in, tr.tokens[0][0][:, d].numpy(), rtol=1e-5, atol=1e-5)
    for k, b in enumerate(w.blocks):
        np.testing.assert_allclose(w.block_out[k], tr.tokens[b][0][:, d].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(w.final, tr.tokens[-1][0][:, d].numpy(), rtol=1e-4, atol=1e-4)
    # each pixel column is its patch: the column's mean colour is the patch's mean colour
    P = w.patch_size
    patch5 = a.image[0:P, 5 * P:6 * P].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(w.pixels[:, 5].mean(0), patch5, atol=1.0)


def test_last_frame_names_the_models_argmax(arrow):
    w, _, x, loaded = arrow
    with torch.no_grad():
        logits = loaded.model(x)[0]
    top = int(logits.argmax())
    assert int(np.argmax(w.probs)) == top
    fig = walk_view.walk_figure(w, loaded.class_names)
    last = fig.frames[-1]
    assert last.name == "predict" and loaded.class_names[top] in last.layout.title.text.replace("<br>", " ")
    assert list(last.layout.yaxis2.ticktext)[0] == loaded.class_names[top]
    bars = [t for t in last.data if t.type == "bar"][0]
    assert decoded(bars.x)[0] == pytest.approx(float(logits.softmax(-1)[top]), abs=1e-5)
    # and the figure carries the walk's numbers: the embed frame's token row is x_p E, one column per patch
    embed = [t for t in fig.frames[2].data if t.type == "heatmap"][0]
    np.testing.assert_array_equal(decoded(embed.z), w.patch_embed.T)
    np.testing.assert_array_equal(decoded(embed.x), np.arange(1, w.num_tokens))


def decoded(spec) -> np.ndarray:
    """A plotly typed-array spec (the figure's arrays are sent pre-encoded) as numpy."""
    arr = np.frombuffer(base64.b64decode(spec["bdata"]), np.dtype(spec["dtype"]))
    return arr.reshape([int(n) for n in spec["shape"].split(",")]) if "shape" in spec else arr


def test_blocks_and_dims_chosen():
    assert walk.shown_blocks(12, 2) == (1, 6) and walk.shown_blocks(4, 2) == (1, 2)
    assert walk.shown_blocks(1, 2) == (1,) and walk.shown_blocks(12, 3) == (1, 5, 8)
    assert len(walk.shown_dims(96, 197, 10_000)) == 50 and len(walk.shown_dims(768, 197, 10_000)) == 50
    assert len(walk.shown_dims(384, 1370, 10_000)) == 8 and len(walk.shown_dims(24, 17, 10_000)) == 24


def fonts(node, path=""):
    """Every (path, font) in a figure's JSON, frames, slider and buttons included (no hover labels)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "template":
                continue
            if k.endswith("font") and isinstance(v, dict) and "hoverlabel" not in path:
                yield f"{path}.{k}", v
            else:
                yield from fonts(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from fonts(v, f"{path}[{i}]")


@pytest.mark.parametrize("fs", [16, 24])
def test_figure_is_small_animated_and_legible(arrow, fs):
    w, _, _, loaded = arrow
    fig = walk_view.walk_figure(w, loaded.class_names, font_size=fs)
    names = [f.name for f in fig.frames]
    assert names == ["patches", "flatten", "embed", "[CLS]", "+ pos", "block 1", "block 2", "predict"]
    assert {len(f.data) for f in fig.frames} == {len(fig.data)}  # every frame sets every trace
    spec = json.loads(fig.to_json())
    assert len(fig.to_json()) < MAX_JSON
    assert [s["args"][0][0] for s in spec["layout"]["sliders"][0]["steps"]] == names
    assert [b["label"] for b in spec["layout"]["updatemenus"][0]["buttons"]] == ["▶ Play", "❚❚ Pause"]
    found = dict(fonts(spec))
    assert any(".sliders" in p for p in found) and any(".frames" in p for p in found)
    bad = {p: f for p, f in found.items() if f.get("size", 0) < fs or str(f.get("color", "")).lower() not in DARK}
    assert not bad, bad


@pytest.mark.parametrize("kw", [dict(num_classes=0), dict(num_classes=5, reg_tokens=2),
                                dict(num_classes=5, class_token=False, global_pool="avg")])
def test_other_architectures(kw):
    """Feature extractors, registers and mean-pooled models walk too, and say so."""
    tiny, _ = tiny_analysis(32, 3, 40, 5)  # 16 patches + [CLS]
    torch.manual_seed(0)
    model = VisionTransformer(ViTConfig(img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=3, **kw)).eval()

    def transform(img: Image.Image) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(img.convert("RGB").resize((32, 32)), np.float32) / 255)  # (H, W, 3)
        return (x.permute(2, 0, 1) - 0.5) / 0.5  # (3, H, W)

    a = explain.analyze(model, transform, {"mean": (0.5,) * 3, "std": (0.5,) * 3}, Image.fromarray(tiny.image))
    w = walk.walk(a, model)
    fig = walk_view.walk_figure(w, [])
    assert w.num_tokens == 16 + w.num_prefix_tokens == w.prefixed.shape[0] == w.pos_embed.shape[0]
    text = " ".join(f.layout.title.text.replace("<br>", " ") for f in fig.frames)  # unwrapped
    if not kw["num_classes"]:
        assert fig.frames[-1].name == "features" and "no class head" in text and w.lens.shape == (2, 0)
    if kw.get("reg_tokens"):
        assert "2 register tokens" in text
        with pytest.raises(ValueError, match="tokens"):
            walk.walk(tiny, model)  # another model's analysis: 17 tokens, not 19
    if kw.get("global_pool") == "avg":
        assert not w.reads_cls and "no [CLS]" in text
