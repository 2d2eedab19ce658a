"""Do the maps tell the truth? Deletion/insertion (Petsiuk et al. 2018) and model randomisation
(Adebayo et al. 2018) in vit_core.analysis.faithfulness, on the bundled Shapes ViT and unseen
Shapes images (seeds 777001+, never used for training)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vit_core.analysis import faithfulness as fa, interventions as iv
from vit_core.data.shapes import ShapesConfig, generate

ROOT = Path(__file__).resolve().parents[2]
SEED = 777_001


@pytest.fixture(scope="module")
def X():
    side = json.loads((ROOT / "assets" / "models" / "shapes-vit" / "model.json").read_text())
    d = generate(50, SEED, 224, config=ShapesConfig(**side["meta"]["train_config"]["data_options"]))
    return (d.images.float() / 255 - 0.5) / 0.5  # (50, 3, 224, 224)


def test_spearman():
    a = np.arange(10.0)
    assert fa.spearman(a, a ** 3) == pytest.approx(1.0) and fa.spearman(a, -a) == pytest.approx(-1.0)
    assert fa.spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)  # ties get the same (average) rank
    assert fa.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(np.corrcoef([1, 2.5, 2.5, 4], [1, 3, 2, 4])[0, 1])
    assert np.isnan(fa.spearman(np.ones(5), a[:5]))


def test_auc():
    f = np.linspace(0, 1, 5)
    assert fa.auc(f, np.full(5, 0.7)) == pytest.approx(0.7) and fa.auc(f, f) == pytest.approx(0.5)


def test_deletion_insertion_curves_are_what_they_say(bundled, X):
    model, x = bundled.model, X[:1]
    sal = fa.explanation_map(model, x, "rollout")
    r = fa.deletion_insertion(model, x, sal, steps=7)
    p = iv.predict(model, x)[0]
    c = int(p.argmax())
    assert r.target == c and r.fractions[0] == 0 and r.fractions[-1] == 1 and len(r.deletion) == 8
    assert r.deletion[0] == pytest.approx(float(p[c]), abs=1e-5)
    assert r.insertion[-1] == pytest.approx(float(p[c]), abs=1e-5)
    # step 3 of 7 removes the round(3 * 196 / 7) = 84 most salient patches
    order = iv.top_patches(sal, 196)
    assert r.order.tolist() == order
    p3 = iv.predict(model, iv.mask_patches(x, order[:84], 16, "mean"))[0, c]
    assert r.deletion[3] == pytest.approx(float(p3), abs=1e-5)
    blur = iv.baseline(x, "blur", 16)
    ins2 = iv.predict(model, torch.where(iv.patch_mask(order[:56], (14, 14), 16), x, blur))[0, c]
    assert r.insertion[2] == pytest.approx(float(ins2), abs=1e-5)
    assert r.deletion_auc == pytest.approx(fa.auc(r.fractions, r.deletion))
    small = fa.deletion_insertion(model, x, sal, steps=7, batch_size=3)  # batching changes nothing
    assert np.allclose(small.deletion, r.deletion, atol=1e-5) and np.allclose(small.insertion, r.insertion, atol=1e-5)
    with pytest.raises(ValueError):
        fa.deletion_insertion(model, x, np.zeros((3, 3)))


def test_deletion_insertion_runs_all_steps_in_one_batch(bundled, X, monkeypatch):
    """All 2 x 16 steps go through the model together (2 S + 1 images: the unchanged image once),
    in one forward pass of up to 64 images. The time is printed, not asserted: this machine's CPU
    is shared, and its timings swing by 3x (quiet, it is ~0.1 s for the bundled model)."""
    model, x = bundled.model, X[:1]
    sal = fa.explanation_map(model, x, "random")
    t = time.perf_counter()
    fa.deletion_insertion(model, x, sal, steps=16)
    print(f"deletion_insertion, 16 steps, bundled model: {(time.perf_counter() - t) * 1000:.0f} ms")
    calls = []
    real = iv.predict
    monkeypatch.setattr(iv, "predict", lambda m, batch, bs=32: calls.append((len(batch), bs)) or real(m, batch, bs))
    fa.deletion_insertion(model, x, sal, steps=16)
    assert calls == [(33, 64)]


def test_rollout_beats_a_random_order_on_average(bundled, X):
    """Averaged over 50 unseen images, deleting patches in rollout order kills the prediction faster
    than a random order (smaller deletion area), and revealing them in that order restores it faster
    (larger insertion area)."""
    model, steps = bundled.model, 10
    areas = {m: [] for m in ("rollout", "random")}
    for i in range(len(X)):
        x = X[i:i + 1]
        for m in areas:
            r = fa.deletion_insertion(model, x, fa.explanation_map(model, x, m, seed=i), steps=steps)
            areas[m].append((r.deletion_auc, r.insertion_auc))
    roll, rnd = np.array(areas["rollout"]).mean(0), np.array(areas["random"]).mean(0)
    print(f"50 images, {steps} steps: rollout deletion {roll[0]:.3f} insertion {roll[1]:.3f}; "
          f"random deletion {rnd[0]:.3f} insertion {rnd[1]:.3f}")
    assert roll[0] < rnd[0] and roll[1] > rnd[1]


def test_randomising_every_layer_decorrelates_the_chefer_map(bundled, X):
    model = bundled.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finals = []
    for i in (0, 1, 2):
        rc = fa.randomization_check(model, X[i:i + 1], "chefer", seed=i)
        assert rc.steps[0] == "original" and rc.steps[1] == "head" and rc.steps[-1] == "embeddings"
        assert len(rc.steps) == len(model.blocks) + 3 and rc.maps.shape == (len(rc.steps), 14, 14)
        assert rc.correlations[0] == pytest.approx(1.0)
        finals.append(rc.correlations[-1])
    print("Chefer map, rank correlation after randomising every layer:", np.round(finals, 3))
    assert max(finals) < 0.5
    # the shared model is untouched: the randomisation ran on a copy
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_randomising_the_head_leaves_rollout_unchanged(bundled, X):
    """Rollout never looks at the head, so re-initialising it cannot move the map (rho stays 1):
    the randomisation check shows what a map is blind to."""
    rc = fa.randomization_check(bundled.model, X[:1], "rollout", seed=0)
    assert rc.correlations[1] == pytest.approx(1.0) and np.allclose(rc.maps[1], rc.maps[0])
    assert rc.correlations[-1] < rc.correlations[1]


def test_maps_need_a_cls_token(tmp_path):
    from vit_core.model import VisionTransformer, ViTConfig

    m = VisionTransformer(ViTConfig(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3,
                                    class_token=False, global_pool="avg")).eval()
    x = torch.randn(1, 3, 32, 32)
    assert fa.explanation_map(m, x, "random").shape == (4, 4)
    with pytest.raises(ValueError):
        fa.explanation_map(m, x, "rollout")
