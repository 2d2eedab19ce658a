"""Do the maps tell the truth? The BENCHMARKS figures, on the bundled model and unseen Shapes images.

Deletion (hide with the mean colour) and insertion (from a blur) areas of raw attention, rollout,
Chefer relevance and a random order; the top 10% of each map hidden against as many random patches;
model randomisation of the Chefer map; the shuffle check without position embeddings.

    python bench/faithfulness.py [--n 50] [--seed 777001] [--spec bundled:shapes-vit]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vit_core.analysis import faithfulness as fa, interventions as iv  # noqa: E402
from vit_core.data.shapes import ShapesConfig, generate  # noqa: E402
from vit_core.io.loading import load_model  # noqa: E402
from vit_core.training.evaluate import training_data_options  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="bundled:shapes-vit")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=777_001, help="never used for training, validation or the card")
    ap.add_argument("--steps", type=int, default=16)
    a = ap.parse_args()
    model = load_model(a.spec).model
    d = generate(a.n, a.seed, model.cfg.img_size, config=ShapesConfig(**training_data_options(a.spec)))
    X = (d.images.float() / 255 - 0.5) / 0.5  # (n, 3, H, W), the bundled model's normalisation
    N = (model.cfg.img_size // model.cfg.patch_size) ** 2
    k = N // 10
    areas = {m: ([], []) for m in (*fa.METHODS, "random")}
    drops = {m: [] for m in fa.METHODS}
    drop_rnd, right = [], 0
    for i in range(a.n):
        x = X[i:i + 1]
        p = iv.predict(model, x)[0]
        c = int(p.argmax())
        right += c == int(d.labels[i])
        rnd = iv.random_patches(N, k, i)
        drop_rnd.append(float(p[c] - iv.predict(model, iv.mask_patches(x, rnd, model.cfg.patch_size, "mean"))[0, c]))
        for m in areas:
            sal = fa.explanation_map(model, x, m)
            r = fa.deletion_insertion(model, x, sal, steps=a.steps)
            areas[m][0].append(r.deletion_auc)
            areas[m][1].append(r.insertion_auc)
            if m in drops:
                top = iv.top_patches(sal, k)
                drops[m].append(float(p[c] - iv.predict(model, iv.mask_patches(x, top, model.cfg.patch_size, "mean"))[0, c]))
    out = {"spec": a.spec, "n": a.n, "seeds": f"{a.seed}..{a.seed + a.n - 1}", "classified_right": right, "k": k,
           "areas": {m: {"deletion": [float(np.mean(v[0])), float(np.std(v[0]))],
                         "insertion": [float(np.mean(v[1])), float(np.std(v[1]))]} for m, v in areas.items()},
           "topk_drop": {m: float(np.mean(v)) for m, v in drops.items()}, "random_drop": float(np.mean(drop_rnd)),
           "topk_beats_random": {m: int(sum(t > r for t, r in zip(v, drop_rnd))) for m, v in drops.items()}}
    out["chefer_randomised_all"] = [float(fa.randomization_check(model, X[i:i + 1], "chefer").correlations[-1])
                                    for i in range(3)]
    sh = [iv.shuffle_check(model, X[i:i + 1], "none", seed=i) for i in range(3)]
    out["shuffle_no_pos"] = {"patch_diff_max": max(s.patch_diff for s in sh), "cls_diff_max": max(s.cls_diff for s in sh)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
