"""The bundled Shapes ViT meets its three acceptance figures (see vit_core/evaluate.py)."""
from pathlib import Path

import pytest

from vit_core.training import evaluate

DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / "shapes-vit"

pytestmark = pytest.mark.skipif(
    not ((DIR / "model.safetensors").is_file() and (DIR / "model.json").is_file()),
    reason="assets/models/shapes-vit/ has no model files: build them with `make model`",
)


@pytest.fixture(scope="module")
def bundled():
    return evaluate.load("bundled:shapes-vit")


def test_architecture_is_the_papers_grid(bundled):
    model, _ = bundled
    assert (model.cfg.img_size, model.cfg.patch_size) == (224, 16) and model.cfg.grid_size == (14, 14)
    assert model.cfg.class_token and model.cfg.num_classes == 10


def test_accuracy_on_unseen_seed_meets_goal(bundled):
    """95% top-1 on the model card's 1,000 images from a seed never used in training (0.958)."""
    model, opts = bundled
    acc = evaluate.accuracy(model, n=1000, seed=evaluate.TEST_SEED, data_options=opts)
    assert acc >= evaluate.THRESHOLDS["accuracy"], acc


def test_bundled_model_is_what_the_preset_makes():
    """`make model` (the shapes-demo preset) regenerates these weights: the shipped file records
    the exact training config, and it must be the preset's, so the two cannot drift apart."""
    import json

    from vit_core.training.config import PRESETS

    shipped = json.loads((DIR / "model.json").read_text())["meta"]
    assert shipped["preset"] == "shapes-demo" and shipped["reason"] == "finished"
    assert shipped["train_config"] == json.loads(json.dumps(PRESETS["shapes-demo"].to_dict()))


def test_rollout_lands_on_the_object(bundled):
    model, opts = bundled
    res = evaluate.rollout_on_object(model, n=200, seed=evaluate.TEST_SEED + 500_000, data_options=opts)
    assert res["ratio"] >= evaluate.THRESHOLDS["rollout_ratio"], res


def test_position_embeddings_have_2d_structure(bundled):
    model, _ = bundled
    res = evaluate.pos_embed_structure(model)
    assert res["gap"] >= evaluate.THRESHOLDS["pos_gap"], res
