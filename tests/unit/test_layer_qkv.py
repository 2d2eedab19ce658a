"""explain.layer_qkv: the analysis keeps no q, k, v (3 x 6.9 MB per ViT-B/16 image in the shared
cache); one layer's are recomputed from its input tokens and must be the trace's, bit for bit, on
the bundled model and on a tiny ViT with every architectural option that touches the tokens on the
way to q and k (registers, pre-norm, LayerScale, q/k norm, position embeddings beside [CLS])."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support.tiny import tiny_analysis
from vit_core.analysis import attention_views, explain
from vit_core.io import images, loading
from vit_core.model import ViTConfig, VisionTransformer

SPEC = "bundled:shapes-vit"
SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "samples" / "shapes-star.png"


def _trace_and_analysis(model: VisionTransformer, transform, data_config: dict, img: Image.Image):
    x = transform(img).unsqueeze(0)  # (1, 3, H, W)
    with torch.no_grad():
        tr = model.trace(x)
    return tr, explain.analyze(model, transform, data_config, img)


def _assert_every_layer_is_the_traces(model: VisionTransformer, tr, a: explain.Analysis) -> None:
    assert a.head_dim == model.blocks[0].attn.head_dim
    for layer in range(a.depth):
        qkv = explain.layer_qkv(model, a, layer)
        for name, got, want in zip("qkv", qkv, (tr.q[layer], tr.k[layer], tr.v[layer])):
            want = want[0].float().numpy()  # (h, T, hd)
            assert got.dtype == np.float32 and got.shape == want.shape == (a.num_heads, a.num_tokens, a.head_dim)
            assert np.array_equal(got, want), (layer, name, float(np.abs(got - want).max()))
        # the attention: float16 in the analysis, float32 bit for bit from layer_attention
        own, want = explain.layer_attention(model, a, layer), tr.attn[layer][0].float().numpy()
        assert own.dtype == np.float32 and np.array_equal(own, want), (layer, float(np.abs(own - want).max()))
        assert a.attn.dtype == np.float16 and np.abs(a.attn[layer].astype(np.float32) - want).max() <= 2 ** -11


def _tiny_options_model() -> VisionTransformer:
    torch.manual_seed(0)
    cfg = ViTConfig(img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=3, num_classes=4, qk_norm=True,
                    reg_tokens=2, pre_norm=True, init_values=0.5, no_embed_class=True)
    model = VisionTransformer(cfg).eval()
    with torch.no_grad():  # the init leaves the q/k norms at identity and attention near uniform
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def _tiny_transform(size: int):
    def transform(img: Image.Image) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(img.convert("RGB").resize((size, size)), np.float32) / 255)
        return (x.permute(2, 0, 1) - 0.5) / 0.5  # (3, H, W)
    return transform


@pytest.mark.parametrize("size", [32, 48], ids=["trained-grid", "resized-grid"])
def test_tiny_vit_with_qk_norm_registers_and_layerscale(size):
    model = _tiny_options_model()
    assert not isinstance(model.blocks[0].attn.q_norm, torch.nn.Identity)
    img = Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8))
    tr, a = _trace_and_analysis(model, _tiny_transform(size), {"mean": (0.5,) * 3, "std": (0.5,) * 3}, img)
    assert a.num_prefix_tokens == 3 and a.num_tokens == 3 + (size // 8) ** 2
    _assert_every_layer_is_the_traces(model, tr, a)


@pytest.mark.skipif(loading.model_status(SPEC).state == "unavailable", reason=f"{SPEC} is not built (make model)")
def test_bundled_model(bundled):
    img = images.load_image(SAMPLE.read_bytes())
    tr, a = _trace_and_analysis(bundled.model, bundled.transform, bundled.data_config, img)
    _assert_every_layer_is_the_traces(bundled.model, tr, a)


def test_the_analysis_keeps_no_qkv_and_the_views_take_one_layers():
    a, model = tiny_analysis(32, 2, 40, 4)
    assert not {"q", "k", "v"} & {f.name for f in dataclasses.fields(a)}
    with pytest.raises(IndexError):
        explain.layer_qkv(model, a, a.depth)
    qkv, own = explain.layer_qkv(model, a, 1), explain.layer_attention(model, a, 1)
    s = attention_views.attention_step(a, qkv, 1, 2, 5, own)
    assert s.softmax_diff < 1e-6 and s.out_diff < 1e-6
    with pytest.raises(IndexError):
        explain.layer_attention(model, a, a.depth)
    # the float16 copy, or all layers, is not one layer's float32 attention: refused
    for bad in (a.attn[1], a.attn.astype(np.float32), own[:, :-1]):
        with pytest.raises(ValueError):
            attention_views.attention_step(a, qkv, 1, 2, 5, bad)
    # all layers stacked, or a (T, D) matrix, is not one layer's (h, T, hd): refused, not misread
    stacked = tuple(np.stack([t, t]) for t in qkv)
    for bad in (stacked, qkv[:2], (a.tokens[1],) * 3):
        with pytest.raises(ValueError):
            attention_views.attention_step(a, bad, 1, 2, 5, own)
        with pytest.raises(ValueError):
            attention_views.head_softmax(a, bad, 1, 2, own)
