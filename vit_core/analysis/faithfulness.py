"""Do the maps tell the truth? Two standard sanity checks of saliency maps, on a ViT.

* Deletion / insertion (Petsiuk, Das & Saenko 2018, "RISE"): remove the patches in the map's
  order, most salient first, and watch the probability of the predicted class fall (a faithful
  map makes it fall fast: small area under the curve); or reveal them one by one on a blurred
  image and watch it rise (a faithful map makes it rise fast: large area).
* Model randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): re-initialise the
  weights from the top down and recompute the map. A map that explains the model must change when
  the model is destroyed; one that stays the same shows the input, not the model.

Maps (``METHODS``): raw [CLS] attention of the last block (mean of heads), attention rollout
(Abnar & Zuidema 2020, mean fusion) and class relevance (Chefer, Gur & Wolf 2021). Nothing is
stored on the model; randomisation works on a deep copy.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from vit_core.analysis import interventions, maps
from vit_core.model import VisionTransformer

METHODS = ("raw_attention", "rollout", "chefer")
METHOD_NAMES = {"raw_attention": "raw attention (last block)", "rollout": "attention rollout",
                "chefer": "Chefer relevance", "random": "random order"}


def explanation_map(model: VisionTransformer, x: torch.Tensor, method: str, target: int | None = None,
                    seed: int = 0) -> np.ndarray:
    """One saliency map (gh, gw) for one normalised image (1, C, H, W).

    Args:
        model: the ViT (read only).
        x: one normalised image.
        method: one of METHODS, or "random" (a seeded random order: the baseline every map must beat).
        target: class explained by "chefer"; defaults to the predicted class.
        seed: for "random".

    Raises:
        ValueError: unknown method, or an attention map on a model without a [CLS] token.
    """
    P = model.cfg.patch_size
    grid = (x.shape[-2] // P, x.shape[-1] // P)
    if method == "random":
        g = torch.Generator().manual_seed(int(seed))
        return torch.rand(grid, generator=g).numpy()  # (gh, gw)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS + ('random',)}, got {method!r}.")
    if not model.cfg.class_token:
        raise ValueError("This model has no [CLS] token: its maps read the [CLS] row.")
    if method == "chefer":
        if target is None:
            target = int(interventions.predict(model, x[:1]).argmax())
        return maps.class_relevance(model, x[:1], target).numpy()
    out = interventions.forward_with(model, x[:1], attention=True)
    n = out.num_prefix_tokens
    if method == "raw_attention":
        return out.attn[-1][0, :, 0, n:].mean(0).reshape(grid).float().cpu().numpy()  # (h, N) -> (gh, gw)
    roll = maps.attention_rollout([a[0] for a in out.attn], num_prefix_tokens=n)  # (L, T, T)
    return maps.rollout_map(roll, roll.shape[0], grid, n).numpy()


# --- deletion and insertion ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionInsertion:
    """Both curves of one map on one image (Petsiuk et al. 2018)."""

    fractions: np.ndarray  # (S+1,) fraction of patches removed / revealed after each step, 0..1
    deletion: np.ndarray  # (S+1,) probability of the target class with the top patches removed
    insertion: np.ndarray  # (S+1,) the same with only the top patches revealed on the baseline
    deletion_auc: float  # area under the deletion curve, over fractions 0..1 (lower is better)
    insertion_auc: float  # area under the insertion curve (higher is better)
    target: int
    order: np.ndarray  # (N,) patches, most salient first


def auc(fractions: np.ndarray, values: np.ndarray) -> float:
    """Trapezoidal area under a curve over fractions 0..1 (so a constant p gives p)."""
    f, v = np.asarray(fractions, np.float64), np.asarray(values, np.float64)
    return float(((v[1:] + v[:-1]) * np.diff(f)).sum() / 2)


def deletion_insertion(model: VisionTransformer, x: torch.Tensor, saliency: np.ndarray | torch.Tensor,
                       steps: int = 16, delete_with: str = "mean", insert_from: str = "blur",
                       target: int | None = None, batch_size: int = 64, seed: int = 0) -> DeletionInsertion:
    """Deletion and insertion curves of a saliency map for one normalised image.

    Args:
        model: the ViT (read only).
        x: one normalised image (1, C, H, W).
        saliency: (gh, gw) map; patches are taken in descending order (ties: lower index first).
        steps: S; step s removes / reveals the round(s N / S) most salient patches.
        delete_with: what deleted patches show ("mean", "blur" or "noise"; see interventions.baseline).
        insert_from: the baseline the insertion curve starts from (Petsiuk et al. use a blur).
        target: class whose probability is followed; defaults to the predicted class.
        batch_size: images per forward pass (all 2 S images of both curves are batched).
        seed: for the "noise" baseline.

    Returns:
        A DeletionInsertion; the deletion curve starts and the insertion curve ends at the
        probability of the target on the unchanged image.
    """
    P = model.cfg.patch_size
    x = x[:1]
    gh, gw = x.shape[-2] // P, x.shape[-1] // P
    N = gh * gw
    s = np.asarray(saliency, np.float32)
    if s.size != N:
        raise ValueError(f"saliency has {s.size} values for {N} patches.")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    order = interventions.top_patches(s, N)
    counts = [round(i * N / steps) for i in range(steps + 1)]  # patches affected after each step
    # rank[p] = position of patch p in the order; a patch is affected at step i iff rank < counts[i]
    rank = torch.empty(N, dtype=torch.long)
    rank[torch.as_tensor(order)] = torch.arange(N)
    cells = rank.view(1, gh, gw) < torch.as_tensor(counts).view(-1, 1, 1)  # (S+1, gh, gw)
    pix = cells.repeat_interleave(P, 1).repeat_interleave(P, 2)  # (S+1, gh*P, gw*P)
    full = torch.zeros(steps + 1, *x.shape[-2:], dtype=torch.bool)
    full[:, : gh * P, : gw * P] = pix
    full = full[:, None].to(x.device)  # (S+1, 1, H, W)
    gone = interventions.baseline(x, delete_with, P, seed)  # (1, C, H, W)
    start = interventions.baseline(x, insert_from, P, seed)
    deleted = torch.where(full, gone, x)  # (S+1, C, H, W); step 0 is x itself
    inserted = torch.where(full, x, start)  # step S is x itself
    # the two unchanged copies of x need no forward pass of their own
    batch = torch.cat([x, deleted[1:], inserted[:-1]])  # (2S+1, C, H, W)
    probs = interventions.predict(model, batch, batch_size)  # (2S+1, C)
    if target is None:
        target = int(probs[0].argmax())
    p = probs[:, target].cpu().numpy()
    dele = p[: steps + 1]
    ins = np.concatenate([p[steps + 1:], p[:1]])
    fr = np.asarray(counts, np.float64) / N
    return DeletionInsertion(fr, dele, ins, auc(fr, dele), auc(fr, ins), int(target), np.asarray(order))


# --- model randomisation -------------------------------------------------------------------------


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (ties get their average rank); nan if one is constant."""

    def ranks(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, np.float64).ravel()
        order = np.argsort(v, kind="stable")
        r = np.empty(v.size)
        r[order] = np.arange(v.size, dtype=np.float64)
        _, inv, counts = np.unique(v, return_inverse=True, return_counts=True)
        sums = np.bincount(inv, weights=r)
        return sums[inv] / counts[inv]  # average rank within each group of ties

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _reinit(module: nn.Module, g: torch.Generator) -> None:
    """Draw new weights the way a fresh ViT starts (trunc. normal 0.02 for linear and conv weights,
    zero biases, unit LayerNorms), from a seeded generator."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                w = torch.empty(m.weight.shape).normal_(0.0, 0.02, generator=g).clamp_(-0.04, 0.04)
                m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()


@dataclass(frozen=True)
class Randomization:
    """A map recomputed while the model is destroyed from the top down (Adebayo et al. 2018)."""

    method: str
    steps: list[str]  # "original", then what was re-initialised (cumulatively) at each step
    maps: np.ndarray  # (S, gh, gw) the map after each step
    correlations: np.ndarray  # (S,) Spearman rank correlation with the original map
    target: int


def randomization_check(model: VisionTransformer, x: torch.Tensor, method: str = "chefer",
                        target: int | None = None, seed: int = 0) -> Randomization:
    """Cascading randomisation: the head, then blocks L, L-1, ..., 1, then the embeddings.

    Args:
        model: the ViT; left untouched (a deep copy is randomised).
        x: one normalised image (1, C, H, W).
        method: one of METHODS.
        target: class for "chefer"; defaults to the original model's prediction and stays fixed.
        seed: the re-initialisation is drawn from this seed.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    x = x[:1]
    if target is None:
        target = int(interventions.predict(model, x).argmax())
    m = copy.deepcopy(model).eval()
    g = torch.Generator().manual_seed(int(seed))
    L = len(m.blocks)
    stages: list[tuple[str, list[nn.Module]]] = [("head", [m.head, m.fc_norm, m.norm])]
    stages += [(f"block {i + 1}", [m.blocks[i]]) for i in reversed(range(L))]
    stages += [("embeddings", [m.patch_embed])]
    names, out = ["original"], [explanation_map(m, x, method, target)]
    for name, mods in stages:
        for mod in mods:
            _reinit(mod, g)
        if name == "embeddings":
            with torch.no_grad():
                for p in (m.pos_embed, m.cls_token, m.reg_token):
                    if p is not None:
                        p.copy_(torch.empty(p.shape).normal_(0.0, 0.02, generator=g))
        names.append(name)
        out.append(explanation_map(m, x, method, target))
    stack = np.stack(out)  # (S, gh, gw)
    corr = np.array([spearman(stack[0], s) for s in stack])
    return Randomization(method, names, stack, corr, int(target))


__all__ = ["METHODS", "METHOD_NAMES", "explanation_map", "DeletionInsertion", "auc", "deletion_insertion",
           "spearman", "Randomization", "randomization_check"]
