"""The bundled Shapes ViT keeps the figures its model card states, measured on fresh seeds.

The figures come from ``vit_core.training.evaluate.fresh_figures``: seeds chosen by a published rule
(10**9 + 7919 k) that training, validation and development never touch (checked below). The card
states them at full size (``python -m vit_core.training.evaluate``: 3 seeds x 1,000 images, plain
shapes 1,000, rollout 3 x 200); this test measures the same protocol at half size to stay fast
(3 x 500, plain 500, rollout 3 x 100). Evaluation renders in chunks of 100 from seeds s, s + 100, ...,
so these are exactly the first half of the card's images, not other ones.

Stage 1 of the recipe (``bundled:shapes-vit-stage1``, striped images only) ships too, for the shortcut
lesson on Critics and impact: it is measured on the same images (without the rollout, which no test
of it reads) to check that it still shows the shortcut the final model was trained out of.
"""
from pathlib import Path

import pytest

from vit_core.training import evaluate

DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / "shapes-vit"
STAGE1 = DIR.parent / "shapes-vit-stage1"  # stage 1 of the recipe: the stripe shortcut
N_PER_SEED, N_PLAIN, N_ROLLOUT = 500, 500, 100  # half the card's sizes (see the module docstring)

pytestmark = pytest.mark.skipif(
    not ((DIR / "model.safetensors").is_file() and (DIR / "model.json").is_file()),
    reason="assets/models/shapes-vit/ has no model files: build them with `make model`",
)


@pytest.fixture(scope="module")
def bundled():
    return evaluate.load("bundled:shapes-vit")


def half_size_figures(spec: str, n_rollout: int = N_ROLLOUT) -> dict:
    """The card's protocol at half size (module docstring) for ``spec``, printed for the record."""
    from vit_core.analysis.shortcut import training_config

    model, opts = evaluate.load(spec)
    res = evaluate.fresh_figures(model, opts, evaluate.FRESH_SEEDS, N_PER_SEED, n_rollout, N_PLAIN,
                                 train_config=training_config(spec))
    print(f"\n{spec} (half size): striped mean {res['accuracy']['mean']:.3f}, worst "
          f"{res['accuracy']['worst']:.3f}, plain {res['plain']['accuracy']:.3f}"
          + (f", rollout {res['rollout']['ratio']:.2f}" if "rollout" in res else "")
          + f", pos gap {res['pos_embed']['gap']:.3f}")
    return res


@pytest.fixture(scope="module")
def figures():
    return half_size_figures("bundled:shapes-vit")


@pytest.fixture(scope="module")
def stage1_figures():
    """Stage 1 (``bundled:shapes-vit-stage1``), same images; no rollout, which no test of it reads."""
    if not ((STAGE1 / "model.safetensors").is_file() and (STAGE1 / "model.json").is_file()):
        pytest.skip("assets/models/shapes-vit-stage1/ has no model files: build them with `make model`")
    return half_size_figures("bundled:shapes-vit-stage1", n_rollout=0)


def test_architecture_is_the_papers_grid(bundled):
    model, _ = bundled
    assert (model.cfg.img_size, model.cfg.patch_size) == (224, 16) and model.cfg.grid_size == (14, 14)
    assert model.cfg.class_token and model.cfg.num_classes == 10


def test_bundled_model_is_what_the_preset_makes():
    """`make model` (the shapes-demo preset) regenerates these weights: the shipped file records
    the exact training config, and it must be the preset's, so the two cannot drift apart."""
    import json

    from vit_core.training.config import PRESETS

    shipped = json.loads((DIR / "model.json").read_text())["meta"]
    assert shipped["preset"] == "shapes-demo" and shipped["reason"] == "finished"
    assert shipped["train_config"] == json.loads(json.dumps(PRESETS["shapes-demo"].to_dict()))


def test_stage1_model_is_what_the_base_preset_makes():
    """The stage 1 weights the shortcut lesson shows are `shapes-demo-base`'s, the run stage 2 starts from."""
    import json

    from vit_core.training.config import PRESETS

    if not (STAGE1 / "model.json").is_file():
        pytest.skip("assets/models/shapes-vit-stage1/ has no model files: build them with `make model`")
    shipped = json.loads((STAGE1 / "model.json").read_text())["meta"]
    assert shipped["preset"] == "shapes-demo-base" and shipped["reason"] == "finished"
    assert shipped["train_config"] == json.loads(json.dumps(PRESETS["shapes-demo-base"].to_dict()))
    assert PRESETS["shapes-demo"].init_from == "preset:shapes-demo-base"


def test_fresh_seeds_follow_the_published_rule():
    assert evaluate.fresh_seeds(3) == [1_000_000_000, 1_000_007_919, 1_000_015_838]
    assert evaluate.FRESH_SEEDS >= 3
    # The test's half-size measurement reads the first chunks of the card's full-size one.
    full = evaluate.generator_seeds(evaluate.fresh_seed(0), 1000)
    assert evaluate.generator_seeds(evaluate.fresh_seed(0), N_PER_SEED) == full[: N_PER_SEED // evaluate.CHUNK]
    assert full[-1] < evaluate.fresh_seed(1)  # a seed's chunks stay inside its own block


def test_fresh_seeds_never_meet_training_validation_or_development():
    """Every generator seed the shipped training run drew (each step's batch, the augmentation stream),
    its validation seed, the seeds looked at during development and the page's lesson scenes lie
    outside the fresh seeds' blocks; and the check can fail (a validation seed on a fresh chunk)."""
    from vit_core.analysis import shortcut

    cfg = shortcut.training_config("bundled:shapes-vit")
    used = evaluate.seeds_in_use(cfg)
    assert {cfg["val_seed"], evaluate.DEV_SEED, 7919 * 7999 + 1} <= used  # validation, development, last step
    evaluate.check_fresh(cfg, evaluate.fresh_seeds(10), evaluate.FRESH_STRIDE - evaluate.CHUNK)
    with pytest.raises(ValueError, match="fresh seeds meet"):
        evaluate.check_fresh({**cfg, "val_seed": evaluate.fresh_seed(1) + 300}, evaluate.fresh_seeds(3), 1000)
    blocks = [range(s, s + evaluate.FRESH_STRIDE) for s in evaluate.fresh_seeds(10)]
    lessons = {shortcut.lesson_seed(s) for s in range(1000)}
    assert not any(s in b for s in lessons for b in blocks) and not used & lessons


def test_accuracy_holds_on_fresh_seeds(figures):
    """Half-size figures measured on this repo's torch build: mean 0.955, worst 0.948 (the card's
    full size: 0.960 and 0.956). The seeds are fixed, so each figure is exact on one build; the floors
    (mean >= 0.94, worst >= 0.93) leave 1.5-1.8 points for float differences between CPUs and torch
    builds, which flip a few borderline images, and still fail a model that is a couple of points
    worse (the previous stage 2, full size: 0.949 and 0.943, is the last that would pass)."""
    acc = figures["accuracy"]
    assert acc["mean"] >= evaluate.THRESHOLDS["accuracy_mean"] == 0.94, figures["per_seed"]
    assert acc["worst"] >= evaluate.THRESHOLDS["accuracy_worst"] == 0.93, figures["per_seed"]
    assert len(figures["per_seed"]) >= 3 and all(r["n"] == N_PER_SEED for r in figures["per_seed"])
    assert figures["protocol"]["checked_against_training"]


def test_plain_shapes_show_the_cure(figures):
    """Stage 2 trained on plain shapes for half of each batch: with the class stripes off (the same
    scenes as fresh seed 0), the final model still reads the class from the outline (half size:
    0.962; card, full size: 0.957). The floor 0.90 keeps a wide margin for float differences and
    fails a model that falls back on the stripes (stage 1: 0.416)."""
    plain = figures["plain"]["accuracy"]
    assert figures["plain"]["data_options"]["fill_texture"] == 0.0
    assert plain >= 0.90, (plain, figures["plain"]["per_class"])


def test_stage1_shows_the_shortcut(stage1_figures):
    """The lesson's other half: stage 1 (striped images only) reads the stripes more than the
    outlines, so with the stripes off (same scenes) accuracy falls to about half (half size: 0.945
    striped, 0.416 plain; card, full size: 0.948 and 0.425). Above chance (0.1) but far below the
    striped figure; if stage 1 is ever retrained and learns the outlines, the page's lesson needs
    rewriting."""
    plain, mean = stage1_figures["plain"]["accuracy"], stage1_figures["accuracy"]["mean"]
    assert stage1_figures["plain"]["data_options"]["fill_texture"] == 0.0
    assert stage1_figures["protocol"]["checked_against_training"]
    assert 0.25 <= plain <= mean - 0.3, (plain, mean)


def test_rollout_lands_on_the_object(figures):
    assert figures["rollout"]["ratio"] >= evaluate.THRESHOLDS["rollout_ratio"], figures["rollout"]
    assert figures["rollout"]["n"] == 3 * N_ROLLOUT


def test_position_embeddings_have_2d_structure(figures):
    assert figures["pos_embed"]["gap"] >= evaluate.THRESHOLDS["pos_gap"], figures["pos_embed"]
    assert all(figures["pass"].values()), figures["pass"]
