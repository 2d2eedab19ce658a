"""What-if interventions (vit_core.analysis.interventions, patch_life) on real models.

The bundled Shapes ViT (trained here) and random timm ViTs; Shapes images come from seeds the
model never saw (777001+), drawn with the options it was trained with.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from vit_core.analysis import explain, interventions as iv, maps, patch_life
from vit_core.data.shapes import ShapesConfig, generate
from vit_core.model import VisionTransformer

ROOT = Path(__file__).resolve().parents[2]
SEED = 777_001  # never used for training (0..), validation (10_000) or the model card (20_000+)


@pytest.fixture(scope="module")
def shapes():
    """50 unseen Shapes images, normalised as the bundled model expects: (50, 3, 224, 224)."""
    side = json.loads((ROOT / "assets" / "models" / "shapes-vit" / "model.json").read_text())
    opts = side["meta"]["train_config"]["data_options"]
    d = generate(50, SEED, 224, config=ShapesConfig(**opts))
    return (d.images.float() / 255 - 0.5) / 0.5, d.labels


def _fingerprint(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model, before: dict) -> bool:
    return all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- the functional forward pass -----------------------------------------------------------------
def test_forward_with_defaults_is_the_model(bundled, shapes):
    x = shapes[0][:4]
    with torch.no_grad():
        ref = bundled.model(x)
    out = iv.forward_with(bundled.model, x, attention=True)
    assert (out.logits - ref).abs().max() < 1e-5
    tr = bundled.model.trace(x)
    assert all((a - b).abs().max() < 1e-6 for a, b in zip(out.attn, tr.attn))


def test_masking_changes_exactly_the_chosen_patches(shapes):
    x = shapes[0][:1]
    hide = [0, 15, 100, 195]
    for mode in iv.MASK_MODES:
        xm = iv.mask_patches(x, hide, 16, mode)
        changed = (xm != x).any(1)[0]  # (H, W)
        cells = changed.reshape(14, 16, 14, 16).any(3).any(1).flatten()  # (N,) any pixel changed per patch
        assert sorted(cells.nonzero().flatten().tolist()) == hide, mode
    mean = iv.mask_patches(x, [5], 16, "mean")[0, :, :16, 80:96]  # patch 5: row 0, column 5
    assert torch.allclose(mean, x.mean(dim=(-2, -1))[0][:, None, None].expand_as(mean))
    assert torch.equal(iv.mask_patches(x, hide, 16, "noise", seed=3), iv.mask_patches(x, hide, 16, "noise", seed=3))
    with pytest.raises(ValueError):
        iv.mask_patches(x, [196], 16)


def test_hiding_the_top_rollout_patches_hurts_more_than_random_ones(bundled, shapes):
    """On most of 50 unseen images, hiding the 10% most-attended patches (rollout) lowers the
    predicted class's probability more than hiding 10% random patches."""
    model, (X, _) = bundled.model, shapes
    k, wins, drops = 19, 0, []
    for i in range(len(X)):
        x = X[i:i + 1]
        out = iv.forward_with(model, x, attention=True)
        c = int(out.logits.argmax())
        roll = maps.attention_rollout([a[0] for a in out.attn])  # (L, T, T)
        sal = maps.rollout_map(roll, roll.shape[0], out.grid)
        p = iv.predict(model, torch.cat([x, iv.mask_patches(x, iv.top_patches(sal, k), 16),
                                         iv.mask_patches(x, iv.random_patches(196, k, seed=i), 16)]))[:, c]
        top, rnd = float(p[0] - p[1]), float(p[0] - p[2])
        wins += top > rnd
        drops.append((top, rnd))
    d = np.array(drops)
    print(f"top-{k} rollout vs {k} random: beats random on {wins}/50; mean drop {d[:, 0].mean():.3f} vs "
          f"{d[:, 1].mean():.3f}")
    assert wins >= 35 and d[:, 0].mean() > d[:, 1].mean() + 0.1


# --- permutation equivariance --------------------------------------------------------------------
@pytest.mark.parametrize("pos", ["none", "mean"])
def test_without_positions_a_shuffle_only_permutes_the_outputs(bundled, shapes, pos):
    for i, seed in ((0, 1), (7, 2), (21, 3)):
        r = iv.shuffle_check(bundled.model, shapes[0][i:i + 1], pos=pos, seed=seed)
        assert sorted(r.perm.tolist()) == list(range(196)) and (r.perm != np.arange(196)).any()
        assert r.patch_diff < 1e-5 and r.cls_diff < 1e-5, (r.patch_diff, r.cls_diff)
        assert np.abs(r.probs_original - r.probs_shuffled).max() < 1e-5


def test_with_positions_a_shuffle_changes_the_outputs(bundled, shapes):
    r = iv.shuffle_check(bundled.model, shapes[0][:1], pos="learned", seed=1)
    assert r.patch_diff > 1e-2 and r.cls_diff > 1e-2 and r.logit_diff > 1e-2
    assert np.abs(r.probs_original - r.probs_shuffled).max() > 1e-3


def test_shuffle_patches_is_a_permutation_of_pixels(shapes):
    x = shapes[0][:1]
    perm = torch.randperm(196, generator=torch.Generator().manual_seed(0)).tolist()
    xs = iv.shuffle_patches(x, perm, 16)
    for i in (0, 17, 195):
        (r, c), (r0, c0) = divmod(i, 14), divmod(perm[i], 14)
        cell = xs[..., 16 * r:16 * r + 16, 16 * c:16 * c + 16]
        assert torch.equal(cell, x[..., 16 * r0:16 * r0 + 16, 16 * c0:16 * c0 + 16])
    inv = np.argsort(perm).tolist()
    assert torch.equal(iv.shuffle_patches(xs, inv, 16), x)


def test_position_modes_and_readouts(bundled, shapes):
    model, x = bundled.model, shapes[0][:2]
    pe = iv.position_embeddings(model, (14, 14), "mean")  # (1, 197, D): [CLS] keeps its own
    assert torch.equal(pe[:, 0], model.pos_embed[:, 0]) and torch.allclose(pe[:, 1:], pe[:, 1:2].expand_as(pe[:, 1:]))
    assert iv.position_embeddings(model, (14, 14), "none").abs().max() == 0
    cls, mean = iv.forward_with(model, x, readout="cls"), iv.forward_with(model, x, readout="mean")
    assert torch.allclose(cls.logits, model(x), atol=1e-5)
    manual = model.head(model.fc_norm(cls.features[:, 1:].mean(1)))  # the mean of the normed patch tokens
    assert torch.allclose(mean.logits, manual, atol=1e-6) and not torch.allclose(mean.logits, cls.logits)
    with pytest.raises(ValueError):
        iv.forward_with(model, x, pos="sideways")


# --- other input sizes ---------------------------------------------------------------------------
@pytest.mark.parametrize("size", [160, 288])
def test_resampled_position_embeddings_run_at_other_sizes(bundled, size):
    from timm.layers import resample_abs_pos_embed

    model = bundled.model
    img = Image.fromarray(np.full((200, 300, 3), 128, np.uint8))
    x = iv.input_at_size(img, bundled.data_config, size, 16)
    g = size // 16
    assert x.shape == (1, 3, size, size)
    want = resample_abs_pos_embed(model.pos_embed, new_size=[g, g], old_size=[14, 14], num_prefix_tokens=1)
    assert torch.equal(iv.position_embeddings(model, (g, g)), want) and want.shape[1] == g * g + 1
    out = iv.forward_with(model, x, attention=True)
    assert out.grid == (g, g) and out.attn[0].shape[-1] == g * g + 1
    with torch.no_grad():
        assert (out.logits - model(x)).abs().max() < 1e-5 and torch.isfinite(out.logits).all()
    r = iv.run(model, x, bundled.data_config)
    assert r.image.shape == (size, size, 3) and r.rollout.shape == (g, g) and abs(r.probs.sum() - 1) < 1e-5


def test_interventions_leave_the_shared_model_alone(bundled, shapes):
    before = _fingerprint(bundled.model)
    x = shapes[0][:1]
    iv.run(bundled.model, iv.mask_patches(x, [1, 2], 16, "blur"), bundled.data_config, pos="none", readout="mean")
    iv.shuffle_check(bundled.model, x, "mean")
    assert _unchanged(bundled.model, before) and not bundled.model.training


# --- follow one patch ----------------------------------------------------------------------------
def test_follow_one_patch(bundled, shapes):
    model = bundled.model
    img = Image.fromarray(explain.image_view(shapes[0][3], bundled.data_config))
    a = explain.analyze(model, bundled.transform, bundled.data_config, img)
    v = patch_life.follow(a, 30, 2)
    assert abs(v.looks_at.sum() + v.looks_at_prefix.sum() - 1) < 1e-3  # a row of the float16 attention
    assert np.allclose(v.looked_at_by.ravel(), a.attn[1].astype(np.float32).mean(0)[1:, 31])
    assert abs(v.similarity.ravel()[30] - 1) < 1e-6 and v.similarity.shape == (14, 14)
    assert np.allclose(v.norm_trajectory, np.linalg.norm(a.tokens[:, 31], axis=-1), rtol=1e-5)
    assert v.pca.shape == (14, 14, 3) and v.pca.min() >= 0 and v.pca.max() <= 1 and v.pca_var.sum() <= 1
    h1 = patch_life.follow(a, 30, 2, head=1)
    assert np.allclose(h1.looks_at.ravel(), a.attn[1, 1, 31, 1:].astype(np.float32))
    cls, prob = patch_life.patch_lens(model, a.tokens)  # (L, T, 5)
    assert cls.shape == (4, 197, 5) and cls[-1, 0, 0] == a.probs.argmax() and abs(prob[-1, 0, 0] - a.probs.max()) < 1e-5
    p_t, top_c, top_p = patch_life.lens_layer(cls, prob, 4, 1, (14, 14), int(a.probs.argmax()))
    assert p_t.shape == top_c.shape == (14, 14) and np.all(p_t <= top_p + 1e-7)
    with pytest.raises(ValueError):
        patch_life.follow(a, 196, 1)


def test_high_norm_outliers_are_flagged():
    rng = np.random.default_rng(0)
    toks = rng.normal(size=(3, 1 + 16, 8)).astype(np.float32)  # (L+1, T, D), a 4 x 4 grid
    toks[2, 1 + 5] *= 20  # one patch token with a huge norm after block 2
    a = explain.Analysis(image=np.zeros((8, 8, 3), np.uint8), grid=(4, 4), patch_size=2, num_prefix_tokens=1,
                         patches=np.zeros(0), patch_embed=np.zeros(0), tokens=toks,
                         attn=np.full((2, 1, 17, 17), 1 / 17, np.float32),
                         rollout=np.zeros(0), distance=np.zeros(0), probs=np.zeros(0), lens=np.zeros(0),
                         conv_unfold_diff=0.0, seconds=0.0)
    assert patch_life.follow(a, 0, 2).outliers.tolist() == [5]
    assert patch_life.follow(a, 0, 1).outliers.tolist() == []


# --- register tokens (Darcet et al. 2024): one architecture against timm ----------------------------
def test_register_model_parity_with_timm():
    """timm's vit_small_patch14_reg4_dinov2 ([CLS] + 4 registers, LayerScale, no position embedding
    on the prefix), random weights at 224 px: our model, its trace and forward_with match timm."""
    torch.manual_seed(0)
    m = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, img_size=224, num_classes=10).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # timm's init leaves the head at zero and attention near uniform
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    ours = VisionTransformer.from_timm(m.requires_grad_(False)).eval()
    assert ours.cfg.reg_tokens == 4 and ours.num_prefix_tokens == 5 and ours.cfg.no_embed_class
    x = torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad():
        ref = m(x)
        assert ref.abs().max() > 0.1
        assert (ours(x) - ref).abs().max() < 1e-4
        assert (ours.trace(x).logits - ref).abs().max() < 1e-4
    assert (iv.forward_with(ours, x).logits - ref).abs().max() < 1e-4
    r = iv.shuffle_check(ours, x[:1], pos="none", seed=0)  # registers are prefix tokens: not shuffled
    assert r.patch_diff < 1e-4 and r.cls_diff < 1e-4
