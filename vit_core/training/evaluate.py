"""Acceptance figures of a Shapes ViT, measured on fresh seeds (the bundled model's card and test).

Fresh seeds. Every figure is measured on seeds that training, validation and development never
touch, chosen by a published rule rather than picked: fresh seed k is ``FRESH_SALT + FRESH_STRIDE * k``
(10**9 + 7919 k; k = 0, 1, 2 by default). A measurement of n images from seed s renders them in
chunks of 100 from generator seeds s, s + 100, ..., so each fresh seed owns the block
[s, s + 7919) of generator seeds (up to 7,900 images). Training draws generator seeds
``(seed * 1_000_003 + 7919 * step + 1) mod 2**62`` (``vit_core.data.source``): for the bundled
run (seed 0, 8,000 steps) they stay below 6.4e7. Validation uses 10,000; development looked at
20,000-20,999 (accuracy), 520,000-520,199 (rollout) and 1-6 (the gallery). ``check_fresh`` lists
every one of these from the model's recorded training config (``seeds_in_use``) and refuses a
measurement that would meet one; the CLI runs it every time. The fresh seeds were first run for the figures in the model card, after the
model was trained, and nothing was tuned on them; a model tuned on them would need new ones
(raise ``FRESH_SALT``).

Figures:

1. ``accuracy``: top-1 on n images per fresh seed, with the training data's config; mean and worst.
2. ``plain``: top-1 on the same scenes as fresh seed 0 with the class stripes off
   (``shortcut.without_stripes``; for the bundled model that is the generator's default config):
   how much of the accuracy the outline alone carries.
3. ``rollout``: how much of the attention rollout (last layer, [CLS] row over patches, mean head
   fusion, no discard) lands on the object, relative to chance, on the first images of each fresh
   seed. Per image, objfrac_p = fraction of object pixels in patch p (from the mask),
   mass = sum_p r_p objfrac_p / sum_p r_p, chance = mean_p objfrac_p; ``ratio`` is the MEAN OVER
   IMAGES of mass / chance (``ratio_of_means`` is also given).
4. ``pos_embed``: mean cosine similarity of 4-neighbour grid positions minus the mean similarity of
   positions >= 5 cells apart in row or column (``embeddings.neighbour_vs_far``, as the Position
   embeddings page shows it). A property of the weights alone: no seed is involved.

    python -m vit_core.training.evaluate [bundled:shapes-vit | file:DIR] [--seeds 3] [--n-acc 1000]
        [--n-plain 1000] [--n-rollout 200] [--dev] [--json [PATH]]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import torch
import torch.nn.functional as F

from vit_core.analysis.embeddings import GRID_GAP_CLEAR, neighbour_vs_far
from vit_core.analysis.maps import attention_rollout, patch_pos_embed, position_similarity
from vit_core.analysis.shortcut import training_config, training_data_options, without_stripes
from vit_core.data.shapes import CLASSES, ShapesConfig, generate
from vit_core.data.source import step_seed
from vit_core.model import VisionTransformer
from vit_core.training.config import PRESETS
from vit_core.training.sources import PLAIN_STREAM

FRESH_SALT = 1_000_000_000  # published rule: fresh seed k = FRESH_SALT + FRESH_STRIDE * k
FRESH_STRIDE = 7919
FRESH_SEEDS = 3
CHUNK = 100  # images per generator seed; a measurement of n images uses seeds s, s + 100, ...
# Looked at while the bundled model was developed (its old card figure 0.958 came from DEV_SEED):
# reported with --dev for comparison only, never a fresh figure.
DEV_SEED = 20_000
DEV_ROLLOUT_SEED = 520_000
GALLERY_SEEDS = tuple(range(1, 7))  # assets/samples/SOURCES.md

# A run limited by time alone (max_steps None) is checked as if it ran this many steps: more than a
# day of CPU training reaches (76 images/s x 24 h / 32 per step = 205,000).
TIME_LIMITED_STEPS = 250_000

GOAL = {"accuracy": 0.95}  # the project's goal for the bundled model
# Floors the shipped model must keep (exit status, unit test). Deterministic seeds make each
# figure exact on one torch build; the margins below the measured values (see MODEL_CARD.md)
# absorb float differences between CPUs and builds, which flip a handful of borderline images,
# yet a model one to two points worse fails.
THRESHOLDS = {"accuracy_mean": 0.94, "accuracy_worst": 0.93, "rollout_ratio": 2.0, "pos_gap": GRID_GAP_CLEAR}


def fresh_seed(k: int) -> int:
    """Fresh seed number ``k`` (0, 1, 2, ...) of the published rule."""
    if k < 0:
        raise ValueError(f"fresh seed index must be >= 0, got {k}")
    return FRESH_SALT + FRESH_STRIDE * k


def fresh_seeds(count: int = FRESH_SEEDS) -> list[int]:
    return [fresh_seed(k) for k in range(count)]


def generator_seeds(seed: int, n: int, batch: int = CHUNK) -> list[int]:
    """The generator seeds a measurement of ``n`` images from ``seed`` renders them from."""
    return [seed + start for start in range(0, n, batch)]


def seeds_in_use(train_config: dict) -> set[int]:
    """Every generator seed a training run of ``train_config`` draws, its validation seed, and the
    seeds looked at during development: what a fresh seed's block must never contain.

    The training stream is the data source's own (``step_seed``): one seed per step's batch,
    the augmentation stream, for a fixed set its seed and one shuffle seed per epoch, the plain
    images' stream when ``plain_share`` is set, and every earlier stage's (``init_from="preset:..."``).
    """
    seed, steps = int(train_config.get("seed", 0)), int(train_config.get("max_steps") or TIME_LIMITED_STEPS)
    used = {step_seed(seed, s) for s in range(steps)} | {step_seed(seed, -10**6), seed}
    if train_config.get("train_size"):  # a fixed set, generated from `seed`, shuffled once per epoch
        used |= {step_seed(seed, -1 - e) for e in range(steps)}
    if train_config.get("plain_share"):  # the plain half of each batch: its own stream (sources.mixed_batches)
        used |= {step_seed(seed, PLAIN_STREAM + s) for s in range(steps)}
    init = train_config.get("init_from") or ""
    if init.startswith("preset:"):  # a later stage: what the earlier stages drew is used too
        used |= seeds_in_use(PRESETS[init.split(":", 1)[1]].to_dict())
    if "val_seed" in train_config:
        used.add(int(train_config["val_seed"]))
    dev = set(generator_seeds(DEV_SEED, 1000)) | set(generator_seeds(DEV_ROLLOUT_SEED, 200)) | set(GALLERY_SEEDS)
    return used | dev


def check_fresh(train_config: dict, seeds: list[int], n: int) -> None:
    """Raises ValueError when a measurement of ``n`` images from each of ``seeds`` would draw a
    generator seed that training, validation or development used (``seeds_in_use``)."""
    used = seeds_in_use(train_config)
    hits = sorted(s for seed in seeds for s in generator_seeds(seed, n) if s in used)
    if hits:
        raise ValueError(f"fresh seeds meet seeds already used: {hits[:5]}; raise FRESH_SALT")


def _normalize(images: torch.Tensor) -> torch.Tensor:
    # The Shapes models' data_config: mean = std = 0.5 (vit_core.data.source.normalize).
    return (images.float() / 255.0 - 0.5) / 0.5


def _chunks(n: int, seed: int, size: int, cfg: ShapesConfig, batch: int = CHUNK):
    """(offset, data) per chunk; chunking keeps memory small and makes the first m images of a
    longer measurement the same as a measurement of m images (for m a multiple of ``batch``)."""
    for start, s in zip(range(0, n, batch), generator_seeds(seed, n, batch)):
        yield start, generate(min(batch, n - start), seed=s, size=size, config=cfg)


@torch.no_grad()
def _object_shares(model: VisionTransformer, images: torch.Tensor, masks: torch.Tensor,
                   batch: int = 25) -> list[tuple[float, float]]:
    """(rollout mass on the object, chance) per image; traced in small batches (attention maps)."""
    P = model.cfg.patch_size
    out = []
    for b in range(0, len(images), batch):
        tr = model.trace(_normalize(images[b:b + batch]))
        objfrac = F.avg_pool2d(masks[b:b + batch, None].float(), P)[:, 0].flatten(1)  # (m, N)
        for i in range(objfrac.shape[0]):
            roll = attention_rollout([a[i] for a in tr.attn], "mean", 0.0, tr.num_prefix_tokens)
            r = roll[-1, 0, tr.num_prefix_tokens:]  # (N,) last layer, [CLS] row over patches
            out.append((float((r * objfrac[i]).sum() / r.sum()), float(objfrac[i].mean())))
    return out


def _rollout_summary(shares: list[tuple[float, float]]) -> dict:
    masses, chances = [m for m, _ in shares], [c for _, c in shares]
    return {"ratio": sum(m / c for m, c in shares) / len(shares),
            "ratio_of_means": (sum(masses) / len(masses)) / (sum(chances) / len(chances)),
            "mass_on_object": sum(masses) / len(masses), "chance": sum(chances) / len(chances),
            "n": len(shares)}


@torch.no_grad()
def seed_figures(model: VisionTransformer, seed: int, n: int = 1000, n_rollout: int = 200,
                 data_options: dict | None = None) -> dict:
    """Accuracy on ``n`` images from ``seed`` and the rollout figure on the first ``n_rollout``.

    Returns:
        dict seed, n, accuracy, correct, per_class (accuracy of each true class), rollout
        (``_rollout_summary``; absent when n_rollout is 0).
    """
    model.eval()
    cfg = ShapesConfig(**(data_options or {}))
    C = model.cfg.num_classes
    hits, seen, shares = torch.zeros(C, dtype=torch.long), torch.zeros(C, dtype=torch.long), []
    for start, d in _chunks(n, seed, model.cfg.img_size, cfg):
        right = model(_normalize(d.images)).argmax(1) == d.labels
        hits += torch.bincount(d.labels[right], minlength=C)
        seen += torch.bincount(d.labels, minlength=C)
        k = max(0, min(len(d.labels), n_rollout - start))  # rollout on the same images, the first ones
        if k:
            shares += _object_shares(model, d.images[:k], d.masks[:k])
    correct = int(hits.sum())
    res = {"seed": seed, "n": n, "accuracy": correct / n, "correct": correct,
           "per_class": (hits.double() / seen.clamp(min=1)).tolist()}
    if shares:
        res["rollout"] = _rollout_summary(shares)
    return res


def accuracy(model: VisionTransformer, n: int = 1000, seed: int = DEV_SEED,
             data_options: dict | None = None) -> float:
    """Top-1 on ``n`` images from ``seed`` (chunks of 100 from seed, seed + 100, ...)."""
    return seed_figures(model, seed, n, 0, data_options)["accuracy"]


def rollout_on_object(model: VisionTransformer, n: int = 200, seed: int = DEV_ROLLOUT_SEED,
                      data_options: dict | None = None) -> dict:
    """The rollout figure alone on ``n`` images from ``seed`` (chunks of 100, like accuracy)."""
    model.eval()
    cfg = ShapesConfig(**(data_options or {}))
    shares = []
    for _, d in _chunks(n, seed, model.cfg.img_size, cfg):
        shares += _object_shares(model, d.images, d.masks)
    return {**_rollout_summary(shares), "grid": list(model.cfg.grid_size)}


def pos_embed_structure(model: VisionTransformer, far: int = 5) -> dict:
    """The Position embeddings page's neighbour-vs-far figure for this model, and their gap."""
    sim = position_similarity(patch_pos_embed(model), model.cfg.grid_size).numpy()  # (N, gh, gw)
    nf = neighbour_vs_far(sim, far)
    return {"neighbour": nf["near"], "far": nf["far"], "gap": nf["near"] - nf["far"]}


def plain_options(data_options: dict | None) -> dict:
    """``data_options`` with the class stripes off (every other knob kept)."""
    return dataclasses.asdict(without_stripes(ShapesConfig(**(data_options or {}))))


def fresh_figures(model: VisionTransformer, data_options: dict | None = None, seeds: int = FRESH_SEEDS,
                  n_acc: int = 1000, n_rollout: int = 200, n_plain: int = 1000, dev: bool = False,
                  train_config: dict | None = None) -> dict:
    """Every acceptance figure on the fresh seeds, and whether each floor holds.

    Args:
        model: the model, on CPU.
        data_options: the ShapesConfig it was trained with (``load`` returns it).
        seeds: how many fresh seeds (k = 0 .. seeds - 1); at least 1.
        n_acc: images per fresh seed, at most 7,900 (a seed's block).
        n_rollout: of these, how many (the first) the rollout figure uses.
        n_plain: images of the plain-shape figure (fresh seed 0's scenes, stripes off).
        dev: also report the development seed's accuracy (``DEV_SEED``), for comparison only.
        train_config: the model's training config (``meta.train_config``); when given, the fresh
            seeds are checked against every seed it drew (``check_fresh``) before measuring.

    Returns:
        dict protocol, per_seed, accuracy {mean, worst, goal_met}, plain, rollout, pos_embed, pass.
    """
    if seeds < 1 or not 0 < n_acc <= FRESH_STRIDE - CHUNK or n_plain > FRESH_STRIDE - CHUNK:
        raise ValueError("need >= 1 seed and 1..7,900 images per seed (a fresh seed's block)")
    if train_config is not None:
        check_fresh(train_config, fresh_seeds(seeds), max(n_acc, n_plain))
    per_seed = [seed_figures(model, s, n_acc, n_rollout, data_options) for s in fresh_seeds(seeds)]
    accs = [r["accuracy"] for r in per_seed]
    mean, worst = sum(accs) / len(accs), min(accs)
    res = {"protocol": {"fresh_seeds": fresh_seeds(seeds), "rule": f"{FRESH_SALT} + {FRESH_STRIDE} * k",
                        "n_per_seed": n_acc, "n_rollout_per_seed": n_rollout, "n_plain": n_plain,
                        "data_options": dict(data_options or {}),
                        "checked_against_training": train_config is not None},
           "per_seed": per_seed,
           "accuracy": {"mean": mean, "worst": worst, "goal": GOAL["accuracy"], "goal_met": mean >= GOAL["accuracy"]}}
    if n_plain:
        opts = plain_options(data_options)
        plain = seed_figures(model, fresh_seed(0), n_plain, 0, opts)
        res["plain"] = {"accuracy": plain["accuracy"], "per_class": plain["per_class"], "n": n_plain,
                        "seed": fresh_seed(0), "data_options": opts}
    rolls = [r["rollout"] for r in per_seed if "rollout" in r]
    if rolls:
        res["rollout"] = {"ratio": sum(r["ratio"] * r["n"] for r in rolls) / sum(r["n"] for r in rolls),
                          "worst": min(r["ratio"] for r in rolls), "n": sum(r["n"] for r in rolls)}
    res["pos_embed"] = pos_embed_structure(model)
    if dev:
        res["development"] = {"seed": DEV_SEED, "accuracy": accuracy(model, 1000, DEV_SEED, data_options),
                              "n": 1000, "note": "looked at during development; not a fresh figure"}
    res["pass"] = {"accuracy_mean": mean >= THRESHOLDS["accuracy_mean"],
                   "accuracy_worst": worst >= THRESHOLDS["accuracy_worst"],
                   "rollout_ratio": bool(rolls) and res["rollout"]["ratio"] >= THRESHOLDS["rollout_ratio"],
                   "pos_gap": res["pos_embed"]["gap"] >= THRESHOLDS["pos_gap"]}
    return res


def load(spec: str) -> tuple[VisionTransformer, dict]:
    """(model, data_options it was trained with) from a loading spec."""
    from vit_core.io.loading import load_model

    return load_model(spec).model, training_data_options(spec)


def _per_class_line(title: str, accs: list[float], names) -> str:
    return f"{title}: " + ", ".join(f"{names[i] if names else i} {a:.2f}" for i, a in enumerate(accs))


def report(res: dict) -> str:
    """The figures as a few lines of text."""
    p = res["protocol"]
    checked = "checked against the training run's seeds" if p["checked_against_training"] else "NOT checked"
    lines = [f"Fresh seeds ({p['rule']}; {checked}), {p['n_per_seed']:,} images each, "
             f"data {p['data_options'] or 'default'}:"]
    lines += [f"  seed {r['seed']}: accuracy {r['accuracy']:.3f}" +
              (f", rollout on object {r['rollout']['ratio']:.2f}x chance ({r['rollout']['n']} images)"
               if "rollout" in r else "") for r in res["per_seed"]]
    a = res["accuracy"]
    lines.append(f"Accuracy: mean {a['mean']:.3f}, worst {a['worst']:.3f} (goal {a['goal']}: "
                 f"{'met' if a['goal_met'] else 'NOT met'})")
    names = CLASSES if len(res["per_seed"][0]["per_class"]) == len(CLASSES) else None
    per_class = [sum(c) / len(c) for c in zip(*(r["per_class"] for r in res["per_seed"]))]
    lines.append(_per_class_line("  per class (mean over seeds)", per_class, names))
    if "plain" in res:
        lines.append(f"Plain shapes (seed {res['plain']['seed']}'s scenes, stripes off, {res['plain']['n']:,} "
                     f"images): {res['plain']['accuracy']:.3f}")
        lines.append(_per_class_line("  per class", res["plain"]["per_class"], names))
    if "rollout" in res:
        lines.append(f"Rollout on object / chance: {res['rollout']['ratio']:.2f} (worst seed "
                     f"{res['rollout']['worst']:.2f}, {res['rollout']['n']} images)")
    pe = res["pos_embed"]
    lines.append(f"Position embeddings: neighbour {pe['neighbour']:.3f} - far {pe['far']:.3f} = gap {pe['gap']:.3f}")
    if "development" in res:
        lines.append(f"Development seed {DEV_SEED} (not fresh): {res['development']['accuracy']:.3f}")
    lines.append("Floors " + ", ".join(f"{k} >= {THRESHOLDS[k]}: {'pass' if v else 'FAIL'}"
                                       for k, v in res["pass"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vit_core.training.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("spec", nargs="?", default="bundled:shapes-vit")
    ap.add_argument("--seeds", type=int, default=FRESH_SEEDS, help="fresh seeds k = 0 .. SEEDS-1")
    ap.add_argument("--n-acc", type=int, default=1000, help="images per fresh seed")
    ap.add_argument("--n-rollout", type=int, default=200, help="of these, images for the rollout figure")
    ap.add_argument("--n-plain", type=int, default=1000, help="plain-shape images (0 = skip)")
    ap.add_argument("--dev", action="store_true", help="also the development seed's accuracy (not fresh)")
    ap.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write JSON (to stdout without PATH)")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    model, opts = load(a.spec)
    res = fresh_figures(model, opts, a.seeds, a.n_acc, a.n_rollout, a.n_plain, a.dev,
                        training_config(a.spec) or None)
    if a.json == "-":
        print(json.dumps(res, indent=2))
    else:
        print(report(res))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=2)
    return 0 if all(res["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
