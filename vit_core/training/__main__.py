"""Train a ViT from the command line: ``python -m vit_core.training --preset NAME [--out DIR]``.

Prints progress lines to stderr and one JSON line with the result to stdout; ``--out`` saves
``model.safetensors`` + ``model.json`` (format vit-explainer/1) into a directory. ``make model``
rebuilds the bundled model this way (``--preset shapes-demo``).

    python -m vit_core.training --preset shapes-quick --max-seconds 60 --out /tmp/quick
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from vit_core.training import store
from vit_core.training.config import PRESETS, get_preset
from vit_core.training.loop import run
from vit_core.training.sources import DATA_SOURCES


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
    done = run(cfg, log=log, data=data)
    if a.out:
        store.save_run(a.out, done.model, cfg, data.classes, done, preset=a.preset, data_seconds=round(data_s, 1))
        log(f"saved to {a.out}")
    print(json.dumps({"preset": a.preset, "val_acc": done.val_acc, "seconds": round(done.seconds, 2),
                      "data_seconds": round(data_s, 2),
                      "steps": done.steps, "reason": done.reason, "out": a.out}))
    return 0 if not done.reason.startswith("diverged") else 1


if __name__ == "__main__":
    sys.exit(main())
