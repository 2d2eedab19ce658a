"""Train a ViT from the command line: ``python -m vit_core.training --preset NAME [--out DIR]``.

Prints progress lines to stderr and one JSON line with the result to stdout; ``--out`` saves
``model.safetensors`` + ``model.json`` (format vit-explainer/1) into a directory. ``make model``
rebuilds the bundled model this way (``--preset shapes-demo``).

    python -m vit_core.training --preset shapes-quick --max-seconds 60 --out /tmp/quick
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from vit_core.training import store
from vit_core.training.config import PRESETS, get_preset
from vit_core.training.loop import run
from vit_core.training.sources import DATA_SOURCES


BUILD = Path("build")  # where stage presets (``init_from="preset:NAME"``) are trained and kept


def stage_weights(name: str, log) -> str:
    """The weights of preset ``name``: ``build/NAME`` when it holds exactly that preset's finished
    run (same config), else trained there now. Returns the .safetensors path."""
    cfg = PRESETS[name]
    out = BUILD / name
    meta = out / "model.json"
    if meta.exists():
        rec = json.loads(meta.read_text()).get("meta", {})
        if rec.get("train_config") == json.loads(json.dumps(cfg.to_dict())) and rec.get("reason") == "finished":
            log(f"stage {name}: reusing {out}")
            return str(out / "model.safetensors")
    log(f"stage {name}: training it first into {out}")
    data = DATA_SOURCES[cfg.dataset](with_base(cfg, log))
    threads = torch.get_num_threads()
    if cfg.num_threads:  # each stage at its own thread count (float sums differ with it): same weights
        torch.set_num_threads(cfg.num_threads)
    try:
        done = run(with_base(cfg, log), log=log, data=data)
    finally:
        torch.set_num_threads(threads)
    if done.reason != "finished":
        raise SystemExit(f"stage {name} ended: {done.reason}")
    store.save_run(out, done.model, cfg, data.classes, done, preset=name)
    return str(out / "model.safetensors")


def with_base(cfg, log):
    """``cfg`` with a ``preset:NAME`` init_from replaced by that stage's weights file."""
    if cfg.init_from and cfg.init_from.startswith("preset:"):
        return dataclasses.replace(cfg, init_from=stage_weights(cfg.init_from.split(":", 1)[1], log))
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vit_core.training", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="shapes-quick", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int)
    ap.add_argument("--max-seconds", type=float)
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--threads", type=int, help="CPU threads of this process (default: the preset's, else torch's)")
    ap.add_argument("--out", help="directory to save model.safetensors + model.json")
    ap.add_argument("--set", dest="overrides", default="{}",
                    help='JSON object of TrainConfig fields to override, e.g. \'{"lr": 1e-3}\'')
    a = ap.parse_args(argv)
    over = {k: v for k, v in (("seed", a.seed), ("max_seconds", a.max_seconds), ("max_steps", a.max_steps),
                              ("num_threads", a.threads)) if v is not None}
    if a.max_seconds is not None and a.max_steps is None:
        over["max_steps"] = None  # a time budget alone: the schedule follows the clock
    if a.max_steps is not None and a.max_seconds is None:
        over["max_seconds"] = None
    over.update(json.loads(a.overrides))
    cfg = get_preset(a.preset, **over)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)  # this process is the trainer: its pool is its own
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    log(f"preset {a.preset}: {json.dumps(cfg.to_dict())}")
    t = time.perf_counter()
    data = DATA_SOURCES[cfg.dataset](cfg)
    data_s = time.perf_counter() - t
    log(f"data ready in {data_s:.1f}s")
    done = run(with_base(cfg, log), log=log, data=data)
    if a.out:
        store.save_run(a.out, done.model, cfg, data.classes, done, preset=a.preset, data_seconds=round(data_s, 1))
        log(f"saved to {a.out}")
    print(json.dumps({"preset": a.preset, "val_acc": done.val_acc, "seconds": round(done.seconds, 2),
                      "data_seconds": round(data_s, 2),
                      "steps": done.steps, "reason": done.reason, "out": a.out}))
    return 0 if not done.reason.startswith("diverged") else 1


if __name__ == "__main__":
    sys.exit(main())
