"""The bundled model's two-stage recipe: mixed plain/striped batches, stage reuse, fresh-seed bookkeeping."""
from __future__ import annotations

import dataclasses
import json

import torch

from vit_core.data.shapes import ShapesConfig, generate
from vit_core.data.source import step_seed
from vit_core.training import __main__ as cli
from vit_core.training import evaluate
from vit_core.training.config import PRESETS, get_preset
from vit_core.training.sources import PLAIN_STREAM, shapes_source


def _small(**over):
    return get_preset("shapes-demo", img_size=64, vit=dataclasses.replace(PRESETS["shapes-demo"].vit, img_size=64),
                      batch_size=8, val_size=10, **over)


def test_mixed_batch_is_half_plain_from_its_own_stream():
    cfg = _small()
    images, labels, masks = shapes_source(cfg).train_batch(3)
    assert images.shape == (8, 3, 64, 64) and labels.shape == (8,) and masks.shape == (8, 64, 64)
    plain_seed = step_seed(cfg.seed, PLAIN_STREAM + 3)
    again = generate(4, seed=plain_seed, size=64, labels=labels[4:], config=ShapesConfig())  # no stripes
    assert torch.equal(images[4:], again.images)
    striped = generate(4, seed=step_seed(cfg.seed, 3), size=64, labels=labels[:4], config=ShapesConfig(fill_texture=0.8))
    assert torch.equal(images[:4], striped.images)
    assert not torch.equal(images[:4], generate(4, seed=step_seed(cfg.seed, 3), size=64, labels=labels[:4]).images)


def test_mixed_batch_labels_are_not_biased_to_the_first_classes():
    cfg = _small()
    src = shapes_source(cfg)
    counts = torch.bincount(torch.cat([src.train_batch(s)[1] for s in range(200)]), minlength=10)
    assert counts.min() > 0.6 * counts.float().mean()  # a balanced cycle per half batch would starve 6-9


def test_plain_share_zero_keeps_the_stage_one_stream():
    base = get_preset("shapes-demo-base", img_size=64, vit=dataclasses.replace(PRESETS["shapes-demo-base"].vit, img_size=64),
                      batch_size=8, val_size=10)
    images, labels, _ = shapes_source(base).train_batch(5)
    ref = generate(8, seed=step_seed(0, 5), size=64, config=ShapesConfig(fill_texture=0.8))
    assert torch.equal(images, ref.images) and torch.equal(labels, ref.labels)


def test_fresh_seed_check_knows_both_stages():
    cfg = json.loads(json.dumps(PRESETS["shapes-demo"].to_dict()))
    used = evaluate.seeds_in_use(cfg)
    assert step_seed(0, 7999) in used  # stage 1 (the base preset's last batch)
    assert step_seed(1, 5999) in used and step_seed(1, PLAIN_STREAM + 5999) in used  # stage 2, both halves
    evaluate.check_fresh(cfg, evaluate.fresh_seeds(3), 1000)


def test_a_stage_is_reused_only_when_its_record_matches(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "BUILD", tmp_path)
    out = tmp_path / "shapes-demo-base"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"")
    rec = {"meta": {"train_config": json.loads(json.dumps(PRESETS["shapes-demo-base"].to_dict())), "reason": "finished"}}
    (out / "model.json").write_text(json.dumps(rec))
    assert cli.stage_weights("shapes-demo-base", lambda s: None) == str(out / "model.safetensors")
    trained = []
    monkeypatch.setattr(cli, "run", lambda *a, **k: trained.append(a) or (_ for _ in ()).throw(SystemExit("would train")))
    rec["meta"]["train_config"]["lr"] = 1.0  # another recipe: not reused
    (out / "model.json").write_text(json.dumps(rec))
    try:
        cli.stage_weights("shapes-demo-base", lambda s: None)
    except SystemExit:
        pass
    assert trained, "a stage whose record differs is trained again"


def test_a_stage_trains_at_its_own_thread_count(tmp_path, monkeypatch):
    """Stage 2 runs at two threads; stage 1, trained first in the same process, must keep its one
    (float sums differ with the thread count, and so would its weights)."""
    monkeypatch.setattr(cli, "BUILD", tmp_path)
    seen = []
    monkeypatch.setattr(cli, "run", lambda *a, **k: seen.append(torch.get_num_threads()) or (_ for _ in ()).throw(
        SystemExit("stop")))
    before = torch.get_num_threads()
    torch.set_num_threads(PRESETS["shapes-demo"].num_threads)
    try:
        try:
            cli.stage_weights("shapes-demo-base", lambda s: None)
        except SystemExit:
            pass
        assert seen == [PRESETS["shapes-demo-base"].num_threads] == [1]
        assert torch.get_num_threads() == PRESETS["shapes-demo"].num_threads == 2  # restored for stage 2
    finally:
        torch.set_num_threads(before)
