"""The trainer: learning, determinism, stopping, divergence, one loop for ViT and CNN, saving, plans, the CLI."""
import dataclasses
import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from vit_core.data.source import DataSource
from vit_core.model import ViTConfig
from vit_core.training.config import PRESETS, TrainConfig
from vit_core.training.loop import Done, Eval, Snapshot, Step, param_groups, run, train

ROOT = Path(__file__).resolve().parents[2]
TINY = ViTConfig(img_size=32, patch_size=8, num_classes=10, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(vit=TINY, img_size=32, batch_size=32, lr=2e-3, warmup_steps=5, max_steps=30,
                max_seconds=None, train_size=128, val_size=32, eval_every=10, snapshot_every=0,
                augment=True, shift_px=4, num_threads=1)
    base.update(kw)
    return TrainConfig(**base)


_DATA = {}


def tiny_data(cfg: TrainConfig) -> DataSource:
    """Shapes data built once per test session (generation dominates a tiny run's time)."""
    from vit_core.training.sources import shapes_source

    key = (cfg.train_size, cfg.val_size, cfg.seed, cfg.batch_size, cfg.img_size)
    if key not in _DATA:
        _DATA[key] = shapes_source(cfg)
    return _DATA[key]


def test_loss_falls_and_events_have_the_promised_fields():
    cfg = tiny_cfg(max_steps=60, snapshot_every=30)
    events = list(train(cfg, data=tiny_data(cfg)))
    steps = [e for e in events if isinstance(e, Step)]
    snaps = [e for e in events if isinstance(e, Snapshot)]
    done = events[-1]
    assert isinstance(done, Done) and done.reason == "finished" and done.steps == 60
    assert sum(s.loss for s in steps[-10:]) / 10 < sum(s.loss for s in steps[:10]) / 10 - 0.05
    assert all(math.isfinite(s.lr) and s.images_per_s > 0 for s in steps)
    assert any(isinstance(e, Eval) for e in events) and 0.0 <= done.val_acc <= 1.0
    s = snaps[-1]
    assert s.pos_similarity.shape == (16, 4, 4) and s.rollout.shape == (4, 4)
    assert s.image.shape == (32, 32, 3) and s.image.dtype.name == "uint8"
    assert 0.0 < float(s.rollout.sum()) <= 1.0 + 1e-5  # [CLS] row over patches: part of a unit mass


def test_same_seed_same_result_and_global_rng_untouched():
    cfg = tiny_cfg(max_steps=15)
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    a = run(cfg, data=tiny_data(cfg))
    assert torch.equal(torch.rand(2), expected)
    b = run(cfg, data=tiny_data(cfg))
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = run(tiny_cfg(max_steps=15, seed=1), data=tiny_data(cfg))
    assert not torch.equal(c.model.pos_embed, a.model.pos_embed)


def test_fresh_data_mode_runs():
    cfg = tiny_cfg(max_steps=3, train_size=None, batch_size=8, eval_every=0)
    done = run(cfg)
    assert done.reason == "finished" and done.steps == 3


def test_stop_event_stops_mid_run():
    cfg = tiny_cfg(max_steps=10_000)
    stop = threading.Event()
    last = None
    for ev in train(cfg, stop, data=tiny_data(cfg)):
        if isinstance(ev, Step) and ev.step == 5:
            stop.set()
        last = ev
    assert isinstance(last, Done) and last.reason == "stopped" and last.steps == 5


def test_time_budget():
    cfg = tiny_cfg(max_steps=None, max_seconds=1.0)
    done = run(cfg, data=tiny_data(cfg))
    assert done.reason == "time budget" and done.steps > 0 and done.seconds < 10


def test_huge_lr_diverges_with_an_explanation():
    cfg = tiny_cfg(lr=1e4, warmup_steps=1, grad_clip=0.0, max_steps=200)
    done = run(cfg, data=tiny_data(cfg))
    assert done.reason.startswith("diverged"), done.reason
    assert "learning rate" in done.reason and "step" in done.reason


def test_nan_input_diverges():
    cfg = tiny_cfg(max_steps=20)
    good = tiny_data(cfg)

    def batch(step):
        x, y = good.train_batch(step)
        if step == 3:
            bad = x.float()
            bad[0] = float("nan")  # a whole image: augmentation's random crop cannot miss it
            return bad, y
        return x, y

    data = DataSource(batch, good.val_images, good.val_labels, good.classes, good.train_size)
    done = run(cfg, data=data)
    assert done.reason.startswith("diverged: loss became NaN at step 3"), done.reason


def test_saved_model_reloads_with_identical_outputs(tmp_path):
    from vit_core.io.loading import load_model
    from vit_core.training.store import save_run

    cfg = tiny_cfg(max_steps=5)
    data = tiny_data(cfg)
    done = run(cfg, data=data)
    save_run(str(tmp_path / "m"), done.model, cfg, data.classes, done)
    side = json.loads((tmp_path / "m" / "model.json").read_text())
    assert side["format"] == "vit-explainer/1" and side["class_names"] == data.classes
    assert side["data_config"]["mean"] == [0.5, 0.5, 0.5] and side["data_config"]["crop_pct"] == 1.0
    lm = load_model(f"file:{tmp_path / 'm' / 'model.safetensors'}")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(lm.model(x), done.model.eval()(x))


def test_presets_are_consistent():
    for name, cfg in PRESETS.items():
        assert cfg.vit.img_size == cfg.img_size and cfg.img_size % cfg.vit.patch_size == 0, name
        assert cfg.val_seed != cfg.seed
    demo = PRESETS["shapes-demo"].vit
    assert (demo.img_size, demo.patch_size) == (224, 16) and demo.grid_size == (14, 14)


def test_cli_prints_a_final_json_line(tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "vit_core.training", "--preset", "shapes-quick", "--max-steps", "3",
                        "--out", str(out), "--threads", "1",
                        "--set", '{"train_size": 64, "val_size": 16}'], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["steps"] == 3 and {"val_acc", "seconds", "steps"} <= set(res)
    assert (out / "model.safetensors").is_file() and (out / "model.json").is_file()


def test_train_config_is_frozen_and_training_never_mutates_it():
    cfg = tiny_cfg(max_steps=2, eval_every=0, vit=dataclasses.replace(TINY, num_classes=3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    before = cfg.to_dict()
    done = run(cfg, data=tiny_data(cfg))  # 10 Shapes classes: the head follows the data...
    assert done.model.head.out_features == 10
    assert cfg.to_dict() == before and cfg.vit.num_classes == 3  # ...on a copy, never on the caller's config


def test_the_cnn_trains_through_the_same_loop():
    from vit_core.cnn import SmallCNN

    cfg = tiny_cfg(max_steps=40, snapshot_every=10, token_label_weight=1.0)
    events = list(train(cfg, data=tiny_data(cfg), family="cnn"))
    done = events[-1]
    assert isinstance(done, Done) and isinstance(done.model, SmallCNN) and done.reason == "finished"
    steps = [e for e in events if isinstance(e, Step)]
    assert len(steps) == 40 and sum(s.loss for s in steps[-10:]) < sum(s.loss for s in steps[:10]) - 0.05
    assert any(isinstance(e, Eval) for e in events)
    assert not any(isinstance(e, Snapshot) for e in events)  # snapshots and token labels: ViT only


def test_one_weight_decay_rule_for_vit_and_cnn():
    from vit_core.cnn import make_cnn
    from vit_core.model import VisionTransformer

    vit = VisionTransformer(TINY)

    def decayed(model, **kw):
        groups = param_groups(model, 0.05, **kw)
        assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
        ids = {id(p) for p in groups[0]["params"]}
        return {n for n, p in model.named_parameters() if id(p) in ids}

    d = decayed(vit)
    assert "blocks.0.attn.qkv.weight" in d and "patch_embed.proj.weight" in d and "head.weight" in d
    assert "cls_token" in d  # as the bundled model was trained: `make model` must reproduce it
    assert not {"pos_embed", "head.bias", "norm.weight", "blocks.0.norm1.weight"} & d
    assert "pos_embed" in decayed(vit, decay_pos_embed=True)
    cnn = make_cnn(20_000, 10)
    dc = decayed(cnn)
    assert "stem.0.weight" in dc and "head.weight" in dc
    assert not any(n.endswith("bias") or ".bn" in n or n.startswith("stem.1") for n in dc)


def test_training_leaves_the_thread_count_alone():
    before = torch.get_num_threads()
    cfg = tiny_cfg(max_steps=3, num_threads=before + 3, eval_every=0)
    for ev in train(cfg, data=tiny_data(cfg)):
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before


def test_the_form_plans_runs_without_the_page():
    """What pages/train.py used to compute: presets per layout, epoch budgets, the zip split."""
    from vit_core.training import plans
    from vit_core.training.config import LAYOUTS

    quick = plans.config_for(plans.Choices())
    assert quick.vit == dataclasses.replace(LAYOUTS["quick"][1], num_classes=10) and quick.max_seconds == 60
    assert quick.snapshot_every == quick.eval_every == 25 and quick.num_threads is None
    demo = plans.config_for(plans.Choices(layout="bundled", seconds=None, epochs=2, shapes_set=1000))
    assert (demo.lr, demo.shift_px, demo.train_size) == (PRESETS["shapes-demo-base"].lr, 16, 1000)
    assert demo.max_seconds is None and demo.max_steps == math.ceil(2 * 1000 / PRESETS["shapes-demo-base"].batch_size)
    z = plans.Choices(data="zip", zip_images=100, num_classes=2, epochs=1, seconds=None, batch_size=8)
    assert plans.epoch_images(z) == 80 and plans.steps_for(z) == 10 and plans.config_for(z).val_size == 10_000
    assert not plans.config_for(plans.Choices(data="mnist")).augment
    cmp = plans.plan_for("compare", plans.Choices(seconds=60), "Shapes")
    assert [leg.model for leg in cmp.legs] == ["vit", "cnn"] and cmp.legs[0].cfg.max_seconds == 30
    assert cmp.legs[0].cfg.token_label_weight == 0.0  # a fair comparison: no ViT-only extras
    size = plans.plan_for("data-size", plans.Choices(shapes_set=1000), "Shapes")
    assert [leg.cfg.train_size for leg in size.legs] == [100, 100, 1000, 1000]
    assert plans.estimate_seconds(cmp) == pytest.approx(60 + 2 * plans.PREP_SECONDS)
