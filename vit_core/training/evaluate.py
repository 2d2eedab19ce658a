"""Acceptance figures of a Shapes ViT (the bundled model's model card and test use these).

1. ``accuracy``: top-1 on Shapes images from a seed never used in training.
2. ``rollout_on_object``: how much of the attention rollout (last layer, [CLS] row over patches,
   mean head fusion, no discard) lands on the object, relative to chance. For each image,
   objfrac_p = fraction of object pixels in patch p (from the mask),
   mass = sum_p r_p objfrac_p / sum_p r_p, chance = mean_p objfrac_p; the reported ``ratio`` is the
   MEAN OVER IMAGES of mass / chance (``ratio_of_means`` is also given).
3. ``pos_embed_structure``: mean cosine similarity of 4-neighbour grid positions minus the mean
   similarity of positions >= 5 cells apart in row or column (``embeddings.neighbour_vs_far``, as
   the Position embeddings page shows it), on the learned patch position embeddings.

    python -m vit_core.training.evaluate [bundled:shapes-vit | file:DIR/model.safetensors] [--n-acc 1000]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from vit_core.analysis.maps import attention_rollout, patch_pos_embed, position_similarity
from vit_core.analysis.embeddings import neighbour_vs_far
from vit_core.model import VisionTransformer

TEST_SEED = 20_000  # never used for training (seed 0..) nor for the trainer's validation (10_000)
THRESHOLDS = {"accuracy": 0.95, "rollout_ratio": 2.0, "pos_gap": 0.2}


def _normalize(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255.0 - 0.5) / 0.5


def _data(n: int, seed: int, size: int, data_options: dict | None):
    from vit_core.data.shapes import ShapesConfig, generate

    return generate(n, seed=seed, size=size, config=ShapesConfig(**(data_options or {})))


@torch.no_grad()
def accuracy(model: VisionTransformer, n: int = 1000, seed: int = TEST_SEED,
             data_options: dict | None = None, batch_size: int = 100) -> float:
    model.eval()
    correct = 0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        d = _data(m, seed + start, model.cfg.img_size, data_options)  # chunks keep memory small
        correct += int((model(_normalize(d.images)).argmax(1) == d.labels).sum())
    return correct / n


@torch.no_grad()
def rollout_on_object(model: VisionTransformer, n: int = 200, seed: int = TEST_SEED + 1,
                      data_options: dict | None = None, batch_size: int = 25) -> dict:
    model.eval()
    P, grid = model.cfg.patch_size, model.cfg.grid_size
    ratios, masses, chances = [], [], []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        d = _data(m, seed + start, model.cfg.img_size, data_options)
        tr = model.trace(_normalize(d.images))
        objfrac = F.avg_pool2d(d.masks[:, None].float(), P)[:, 0].flatten(1)  # (m, N)
        for i in range(m):
            roll = attention_rollout([a[i] for a in tr.attn], "mean", 0.0, tr.num_prefix_tokens)
            r = roll[-1, 0, tr.num_prefix_tokens:]  # (N,) last layer, [CLS] row over patches
            mass = float((r * objfrac[i]).sum() / r.sum())
            chance = float(objfrac[i].mean())
            masses.append(mass)
            chances.append(chance)
            ratios.append(mass / chance)
    return {"ratio": sum(ratios) / len(ratios),
            "ratio_of_means": (sum(masses) / len(masses)) / (sum(chances) / len(chances)),
            "mass_on_object": sum(masses) / len(masses), "chance": sum(chances) / len(chances),
            "n": len(ratios), "grid": list(grid)}


def pos_embed_structure(model: VisionTransformer, far: int = 5) -> dict:
    """The Position embeddings page's neighbour-vs-far figure for this model, and their gap."""
    sim = position_similarity(patch_pos_embed(model), model.cfg.grid_size).numpy()  # (N, gh, gw)
    nf = neighbour_vs_far(sim, far)
    return {"neighbour": nf["near"], "far": nf["far"], "gap": nf["near"] - nf["far"]}


def acceptance(model: VisionTransformer, n_acc: int = 1000, n_rollout: int = 200,
               seed: int = TEST_SEED, data_options: dict | None = None) -> dict:
    """All three figures and whether each passes its threshold."""
    acc = accuracy(model, n_acc, seed, data_options)
    roll = rollout_on_object(model, n_rollout, seed + 500_000, data_options)
    pos = pos_embed_structure(model)
    return {"accuracy": acc, "n_accuracy": n_acc, "rollout": roll, "pos_embed": pos, "seed": seed,
            "pass": {"accuracy": acc >= THRESHOLDS["accuracy"],
                     "rollout_ratio": roll["ratio"] >= THRESHOLDS["rollout_ratio"],
                     "pos_gap": pos["gap"] >= THRESHOLDS["pos_gap"]}}


def load(spec: str) -> tuple[VisionTransformer, dict]:
    """(model, data_options it was trained with) from a loading spec."""
    from vit_core.io.loading import load_model

    lm = load_model(spec)
    kind, _, rest = spec.partition(":")
    if kind == "bundled":
        side = Path(__file__).resolve().parents[2] / "assets" / "models" / rest / "model.json"
    else:
        side = Path(rest) / "model.json" if Path(rest).is_dir() else Path(rest).with_suffix(".json")
    meta = json.loads(side.read_text()).get("meta", {})
    return lm.model, (meta.get("train_config") or {}).get("data_options") or {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vit_core.training.evaluate")
    ap.add_argument("spec", nargs="?", default="bundled:shapes-vit")
    ap.add_argument("--n-acc", type=int, default=1000)
    ap.add_argument("--n-rollout", type=int, default=200)
    ap.add_argument("--seed", type=int, default=TEST_SEED)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    model, opts = load(a.spec)
    res = acceptance(model, a.n_acc, a.n_rollout, a.seed, opts)
    print(json.dumps(res, indent=2))
    return 0 if all(res["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
