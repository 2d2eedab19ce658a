"""Tests for vit_core.analysis.maps: hand-computed cases for every number the explainer shows."""

import math

import pytest
import torch

from vit_core.analysis import maps
from vit_core.analysis.maps import _discard_smallest
from vit_core.model import ViTConfig, VisionTransformer

TINY = ViTConfig(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)


def tiny_model(**kw) -> VisionTransformer:
    torch.manual_seed(0)
    cfg = ViTConfig(**{**TINY.to_dict(), **kw})
    model = VisionTransformer(cfg).eval()
    with torch.no_grad():  # the default init is near-uniform; bigger weights make maps differ
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def image(seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(2, 3, 32, 32)


def random_attn(L, h, T, seed=0):
    torch.manual_seed(seed)
    return [torch.randn(h, T, T).softmax(-1) for _ in range(L)]


# --- rollout -----------------------------------------------------------------------------


def test_rollout_two_layers_by_hand():
    a1 = torch.tensor([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    a2 = torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    r = maps.attention_rollout([a1[None], a2[None]])
    # R1 = 0.5*A1 + 0.5*I (rows already sum to 1)
    r1 = torch.tensor([[12, 2, 2], [0, 16, 0], [4, 0, 12]]) / 16
    # A2' = [[.5,.25,.25],[.25,.75,0],[0,0,1]];  R2 = A2' @ R1
    r2 = torch.tensor([[14, 10, 8], [6, 25, 1], [8, 0, 24]]) / 32
    assert r.shape == (2, 3, 3) and r.dtype == torch.float32
    torch.testing.assert_close(r[0], r1)
    torch.testing.assert_close(r[1], r2)
    # a stacked (L, h, T, T) tensor gives the same answer
    torch.testing.assert_close(maps.attention_rollout(torch.stack([a1[None], a2[None]])), r)


def test_fusions_by_hand_and_row_not_flattened_normalisation():
    heads = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])  # (2, 2, 2)
    mean = maps.attention_rollout([heads], head_fusion="mean")[0]
    mx = maps.attention_rollout([heads], head_fusion="max")[0]
    mn = maps.attention_rollout([heads], head_fusion="min")[0]
    torch.testing.assert_close(mean, torch.tensor([[0.75, 0.25], [0.25, 0.75]]))
    # max = all ones -> 0.5*1 + 0.5*I = [[1, .5], [.5, 1]]: per-row sum 1.5, flattened sum 3
    torch.testing.assert_close(mx, torch.tensor([[2, 1], [1, 2]]) / 3)
    assert not torch.allclose(mx, torch.tensor([[2, 1], [1, 2]]) / 6)  # the flattened-sum bug
    torch.testing.assert_close(mn, torch.eye(2))  # min = zeros -> only the residual survives
    assert not torch.allclose(mean, mx) and not torch.allclose(mean, mn)


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9])
def test_rollout_rows_sum_to_one(fusion, ratio):
    r = maps.attention_rollout(random_attn(3, 4, 7), head_fusion=fusion, discard_ratio=ratio)
    assert r.shape == (3, 7, 7) and (r >= 0).all()
    torch.testing.assert_close(r.sum(-1), torch.ones(3, 7))


def test_discard_zeroes_exactly_n_and_spares_cls():
    torch.manual_seed(0)
    a = torch.rand(5, 5) + 0.1
    a[0, :] = 1e-4  # smallest values in the matrix, yet protected
    a[:, 0] = 1e-4
    out = _discard_smallest(a, 0.3)  # 16 eligible entries -> int(4.8) = 4
    zeros = out == 0
    assert int(zeros.sum()) == 4
    assert not zeros[0, :].any() and not zeros[:, 0].any()
    inner = a[1:, 1:].flatten()
    assert torch.equal(out[1:, 1:].flatten()[inner.argsort()[:4]], torch.zeros(4))
    kept = ~zeros
    assert torch.equal(out[kept], a[kept])
    # ties: still exactly int(ratio * count)
    assert int((_discard_smallest(torch.ones(5, 5), 0.5) == 0).sum()) == 8
    assert torch.equal(_discard_smallest(a, 0.0), a)


def test_discard_through_one_layer_rollout():
    torch.manual_seed(1)
    a = torch.rand(1, 4, 4) + 0.1
    a[0, 0, :] = a[0, :, 0] = 1e-3
    a[0].diagonal().fill_(2.0)  # the residual refills the diagonal, so keep drops off it
    r = maps.attention_rollout([a], discard_ratio=0.5)[0]  # 9 eligible -> 4 zeroed
    off_diag = ~torch.eye(4, dtype=torch.bool)
    assert int((r[off_diag] == 0).sum()) == 4
    assert (r[0] > 0).all() and (r[:, 0] > 0).all()
    assert maps.attention_rollout([a], discard_ratio=0.0).count_nonzero() == 16


def test_rollout_rejects_bad_arguments():
    attn = random_attn(1, 2, 5)
    with pytest.raises(ValueError, match="head_fusion"):
        maps.attention_rollout(attn, head_fusion="median")
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="discard_ratio"):
            maps.attention_rollout(attn, discard_ratio=bad)


def test_rollout_map_reads_cls_row_of_the_requested_layer():
    r = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(2, 6, 6)
    m = maps.rollout_map(r, 2, (2, 2), num_prefix_tokens=2)
    torch.testing.assert_close(m, r[1, 0, 2:].reshape(2, 2))
    with pytest.raises(ValueError):
        maps.rollout_map(r, 0, (2, 2))


# --- position embeddings -------------------------------------------------------------------


def test_position_similarity_by_hand():
    pos = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    s = maps.position_similarity(pos, (2, 2))
    c = 1 / math.sqrt(2)
    assert s.shape == (4, 2, 2)
    torch.testing.assert_close(s[0], torch.tensor([[1.0, 0.0], [c, -1.0]]))
    torch.testing.assert_close(s[2], torch.tensor([[c, c], [1.0, -c]]))


def test_position_similarity_diagonal_one_and_symmetric():
    torch.manual_seed(0)
    s = maps.position_similarity(torch.randn(12, 16), (3, 4)).reshape(12, 12)
    torch.testing.assert_close(s.diagonal(), torch.ones(12))
    torch.testing.assert_close(s, s.T)


def test_patch_pos_embed_drops_prefix_tokens():
    m = VisionTransformer(ViTConfig(**{**TINY.to_dict(), "reg_tokens": 2}))
    torch.testing.assert_close(maps.patch_pos_embed(m), m.pos_embed[0, 3:].detach())
    m = VisionTransformer(ViTConfig(**{**TINY.to_dict(), "no_embed_class": True}))
    assert maps.patch_pos_embed(m).shape == (16, 32)


# --- attention distance and maps -------------------------------------------------------------


def patch_attention(targets, cls_mass=0.0):
    """(1, T, T) attention over a 2x2 grid with CLS, patch query i sending its mass to targets[i]."""
    a = torch.zeros(1, 5, 5)
    a[0, 0, 0] = 1.0
    for i, j in enumerate(targets):
        a[0, 1 + i, 0] = cls_mass
        a[0, 1 + i, 1 + j] = 1.0 - cls_mass
    return a


@pytest.mark.parametrize(
    "targets,expected", [([0, 1, 2, 3], 0.0), ([1, 0, 3, 2], 8.0), ([3, 2, 1, 0], 8 * math.sqrt(2))]
)
def test_mean_attention_distance_by_hand(targets, expected):
    d = maps.mean_attention_distance([patch_attention(targets)], (2, 2), patch_size=8)
    assert d.shape == (1, 1)
    assert d.item() == pytest.approx(expected, abs=1e-5)


def test_mean_attention_distance_renormalize_and_averaging():
    a = patch_attention([1, 0, 3, 2], cls_mass=0.5)
    raw = maps.mean_attention_distance([a], (2, 2), 8)
    ren = maps.mean_attention_distance([a], (2, 2), 8, renormalize=True)
    assert raw.item() == pytest.approx(4.0) and ren.item() == pytest.approx(8.0)
    # two heads, two images: mean over images per head, layers kept apart
    near, far = patch_attention([0, 1, 2, 3])[0], patch_attention([3, 2, 1, 0])[0]
    batch = torch.stack([torch.stack([near, far]), torch.stack([far, far])])  # (B=2, h=2, T, T)
    d = maps.mean_attention_distance([batch, batch.flip(1)], (2, 2), 8)
    f = 8 * math.sqrt(2)
    torch.testing.assert_close(d, torch.tensor([[f / 2, f], [f, f / 2]]))


def test_cls_and_query_attention():
    a = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(2, 6, 6)
    torch.testing.assert_close(maps.cls_attention(a, (2, 2), 2), a[:, 0, 2:].reshape(2, 2, 2))
    torch.testing.assert_close(maps.query_attention(a[None], 3, (2, 2), 2), a[:, 3, 2:].reshape(2, 2, 2))


def test_attention_entropy():
    a = torch.stack([torch.eye(4), torch.full((4, 4), 0.25)])  # (2, 4, 4)
    e = maps.attention_entropy(a)
    torch.testing.assert_close(e, torch.stack([torch.zeros(4), torch.full((4,), math.log(4))]))


# --- model-level -----------------------------------------------------------------------------


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, dict(vars(model)), model.training


def test_class_relevance_on_tiny_vit_leaves_model_untouched():
    model, x = tiny_model(), image()
    state, attrs, training = snapshot(model)
    rel = [maps.class_relevance(model, x, t) for t in range(3)]
    assert all(m.shape == (4, 4) and torch.isfinite(m).all() for m in rel)
    assert not torch.allclose(rel[0], rel[1], atol=1e-6)
    assert not torch.allclose(rel[1], rel[2], atol=1e-6)
    after_state, after_attrs, after_training = snapshot(model)
    assert after_state.keys() == state.keys()
    assert all(torch.equal(state[k], after_state[k]) for k in state)
    assert after_attrs.keys() == attrs.keys() and after_training == training
    assert all(p.grad is None for p in model.parameters())
    assert not x.requires_grad


def test_class_relevance_with_frozen_params_and_under_no_grad():
    model, x = tiny_model(), image()
    expected = maps.class_relevance(model, x, 2)
    model.requires_grad_(False)
    with torch.no_grad():
        frozen = maps.class_relevance(model, x, 2)
    torch.testing.assert_close(frozen, expected)
    with pytest.raises(ValueError):
        maps.class_relevance(model, x, 5)


def test_class_relevance_with_registers_reads_patches():
    model = tiny_model(reg_tokens=2)
    assert maps.class_relevance(model, image()[0], 1).shape == (4, 4)


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_logit_lens_last_layer_is_the_model_output(pool):
    model, x = tiny_model(global_pool=pool), image()
    lens = maps.logit_lens(model, model.trace(x))
    assert lens.shape == (2, 2, 5)
    torch.testing.assert_close(lens.sum(-1), torch.ones(2, 2))
    with torch.no_grad():
        expected = model(x).softmax(-1)
    assert (lens[-1] - expected).abs().max() < 1e-5
    assert not torch.allclose(lens[0], lens[-1], atol=1e-4)


def test_patch_embed_pcs():
    torch.manual_seed(0)
    comps, ratio = maps.patch_embed_pcs(torch.randn(32, 3, 8, 8), k=28)
    assert comps.shape == (28, 8, 8, 3) and ratio.shape == (28,)
    assert comps.min() >= 0 and comps.max() <= 1
    torch.testing.assert_close(comps.amin(dim=(1, 2, 3)), torch.zeros(28))
    torch.testing.assert_close(comps.amax(dim=(1, 2, 3)), torch.ones(28))
    assert (ratio[:-1] >= ratio[1:]).all() and ratio.sum() <= 1 + 1e-6
    small_comps, small_ratio = maps.patch_embed_pcs(torch.randn(5, 3, 2, 2), k=28)
    assert small_comps.shape == (5, 2, 2, 3) and small_ratio.shape == (5,)


def test_patch_embed_pcs_finds_the_dominant_direction():
    torch.manual_seed(0)
    direction = torch.zeros(3, 4, 4)
    direction[1, 2, 3] = 1.0  # green channel, row 2, column 3
    w = torch.randn(64, 1, 1, 1) * direction + 1e-3 * torch.randn(64, 3, 4, 4)
    comps, ratio = maps.patch_embed_pcs(w, k=3)
    assert ratio[0] > 0.99
    peak = (comps[0] - comps[0].median()).abs().flatten().argmax()
    assert tuple(torch.unravel_index(peak, (4, 4, 3))) == (2, 3, 1)  # (P, P, C) layout


def test_conv_vs_unfold():
    model, x = tiny_model(), image()
    tr = model.trace(x)
    assert maps.conv_vs_unfold(model, tr) < 1e-5
    tr.patch_embed = tr.patch_embed + 0.1
    assert maps.conv_vs_unfold(model, tr) > 0.05


def test_topk():
    probs = torch.tensor([0.1, 0.5, 0.15, 0.25])
    assert maps.topk(probs, 2, ["a", "b", "c", "d"]) == [("b", 0.5), ("d", 0.25)]
    assert [n for n, _ in maps.topk(probs, 10, None)] == ["class 1", "class 3", "class 2", "class 0"]



def test_neighbour_vs_far_tells_a_2d_map_from_noise():
    """Embeddings that are smooth functions of (row, col) have a large neighbour-minus-far gap;
    random ones have none; a grid with no pair 5 cells apart has no far figure."""
    from vit_core.analysis.maps import position_similarity
    from vit_core.analysis.embeddings import neighbour_vs_far

    gh = gw = 8
    r, c = torch.meshgrid(torch.arange(gh).float(), torch.arange(gw).float(), indexing="ij")
    freqs = torch.arange(1, 9).float() * 0.35
    smooth = torch.cat([torch.sin(r.flatten()[:, None] * freqs), torch.cos(r.flatten()[:, None] * freqs),
                        torch.sin(c.flatten()[:, None] * freqs), torch.cos(c.flatten()[:, None] * freqs)], 1)
    g = neighbour_vs_far(position_similarity(smooth, (gh, gw)).numpy())
    assert g["near"] - g["far"] > 0.3
    noise = neighbour_vs_far(position_similarity(torch.randn(gh * gw, 32, generator=torch.Generator().manual_seed(0)),
                                                 (gh, gw)).numpy())
    assert abs(noise["near"] - noise["far"]) < 0.05
    assert math.isnan(neighbour_vs_far(position_similarity(torch.randn(9, 8), (3, 3)).numpy())["far"])
