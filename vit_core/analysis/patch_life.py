"""Follow one patch through the layers: whom it attends to, who attends to it, how its token
grows and turns, what the classifier would read from it, and where the layer's tokens cluster.

Works on the cached ``explain.Analysis`` (tokens (L+1, T, D) and attention (L, h, T, T)) plus the
model's own norm and head for the per-patch logit lens. Layers are 1-based block numbers: layer l
is the attention of block l and the tokens after block l. High-norm outlier tokens are the
artefacts Darcet et al. (2024, "Vision Transformers Need Registers") found in large ViTs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vit_core.analysis.explain import Analysis
from vit_core.model import VisionTransformer

OUTLIER_FACTOR = 2.0  # a token counts as high-norm at twice the median patch-token norm of its layer


def _check(a: Analysis, patch: int, layer: int) -> None:
    N = a.grid[0] * a.grid[1]
    if not 0 <= patch < N:
        raise ValueError(f"patch must be in 0..{N - 1}, got {patch}.")
    if not 1 <= layer <= a.depth:
        raise ValueError(f"layer must be in 1..{a.depth}, got {layer}.")


def _heads(a: Analysis, layer: int, head: int | None) -> np.ndarray:
    """(T, T) attention of block ``layer``: one head (0-based) or the mean of the heads."""
    att = a.attn[layer - 1].astype(np.float32)  # (h, T, T), from the stored float16
    return att.mean(0) if head is None else att[head]


def pca_rgb(tokens: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The first three principal components of a layer's patch tokens as colours.

    Args:
        tokens: (N, D) patch tokens of one layer.
        grid: (gh, gw).

    Returns:
        (gh, gw, 3) in [0, 1] (each component min-max scaled; the sign of each component fixed so
        that its largest loading is positive, so the colours do not flip between runs) and the
        explained variance ratio of the three components.
    """
    X = torch.from_numpy(np.asarray(tokens, np.float32))
    X = X - X.mean(0, keepdim=True)  # (N, D)
    _, S, Vh = torch.linalg.svd(X, full_matrices=False)  # Vh (min(N, D), D)
    k = min(3, Vh.shape[0])
    V = Vh[:k]  # (k, D)
    sign = torch.sign(V.gather(1, V.abs().argmax(1, keepdim=True)))  # (k, 1)
    proj = X @ (V * sign).T  # (N, k)
    lo, hi = proj.min(0).values, proj.max(0).values
    rgb = torch.zeros(X.shape[0], 3)
    rgb[:, :k] = (proj - lo) / (hi - lo).clamp_min(1e-12)
    var = S**2
    ratio = np.zeros(3, np.float32)
    ratio[:k] = (var[:k] / var.sum().clamp_min(1e-12)).numpy()
    return rgb.reshape(*grid, 3).numpy(), ratio  # (gh, gw, 3), (3,)


def patch_lens(model: VisionTransformer, tokens: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The classifier applied to every token after every block (a logit lens per patch).

    Args:
        model: the ViT whose final norm, fc_norm and head are applied (read only).
        tokens: (L+1, T, D) encoder input and every block's output, as in the Analysis.
        k: classes kept per token.

    Returns:
        top-k classes (L, T, k) and their probabilities (L, T, k), per block 1..L. Reading a patch
        token this way is an experiment: the head was trained on [CLS] only.
    """
    dev = next(model.parameters()).device
    cls, prob = [], []
    with torch.no_grad():
        for z in tokens[1:]:
            z = torch.from_numpy(np.asarray(z)).to(dev)[None]  # (1, T, D)
            p = model.head(model.fc_norm(model.norm(z)))[0].float().softmax(-1)  # (T, C)
            v, i = p.topk(min(k, p.shape[-1]), dim=-1)  # (T, k)
            cls.append(i.cpu().numpy())
            prob.append(v.cpu().numpy())
    return np.stack(cls), np.stack(prob)  # (L, T, k), (L, T, k)


def lens_layer(top_classes: np.ndarray, top_probs: np.ndarray, layer: int, num_prefix_tokens: int,
               grid: tuple[int, int], target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One block of ``patch_lens`` on the patch grid.

    Returns:
        p(target) read from each patch token (0 where the target is outside its top k), each patch's
        top class and that class's probability, all (gh, gw).
    """
    c = top_classes[layer - 1, num_prefix_tokens:]  # (N, k)
    p = top_probs[layer - 1, num_prefix_tokens:]  # (N, k)
    p_target = np.where(c == target, p, 0.0).sum(-1)  # (N,)
    return p_target.reshape(grid), c[:, 0].reshape(grid), p[:, 0].reshape(grid)


@dataclass(frozen=True)
class PatchView:
    """One patch at one layer, and its whole trajectory through the layers."""

    patch: int  # row-major patch index
    layer: int  # 1-based block
    head: int | None  # 0-based head, or None for the mean of the heads
    looks_at: np.ndarray  # (gh, gw) its attention row over the patches
    looks_at_prefix: np.ndarray  # (n,) its attention to [CLS] and the registers
    looked_at_by: np.ndarray  # (gh, gw) the patches' attention to it (its column)
    looked_at_by_prefix: np.ndarray  # (n,) attention of [CLS] and the registers to it
    similarity: np.ndarray  # (gh, gw) cosine similarity of its token to every patch token
    similarity_prefix: np.ndarray  # (n,) ... and to [CLS] and the registers
    norms: np.ndarray  # (gh, gw) norm of every patch token at this layer
    prefix_norms: np.ndarray  # (n,)
    outliers: np.ndarray  # (k,) patches whose norm is >= OUTLIER_FACTOR x the layer's median
    pca: np.ndarray  # (gh, gw, 3) first three principal components of the patch tokens, as RGB
    pca_var: np.ndarray  # (3,) explained variance ratio
    norm_trajectory: np.ndarray  # (L+1,) this token's norm from the embedding to the last block
    cls_similarity: np.ndarray  # (L+1,) cosine similarity to [CLS] at each depth (nan without [CLS])
    self_similarity: np.ndarray  # (L+1,) cosine similarity to its own layer-0 token


def _cos(v: np.ndarray, M: np.ndarray) -> np.ndarray:
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    return (M @ v) / np.maximum(np.linalg.norm(M, axis=-1), 1e-12)


def _rowcos(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of A with the same row of B."""
    den = np.maximum(np.linalg.norm(A, axis=-1) * np.linalg.norm(B, axis=-1), 1e-12)
    return (A * B).sum(-1) / den


def follow(a: Analysis, patch: int, layer: int, head: int | None = None) -> PatchView:
    """Everything the "Follow one patch" section shows, from the cached analysis."""
    _check(a, patch, layer)
    n, grid = a.num_prefix_tokens, a.grid
    t = n + patch  # token index
    att = _heads(a, layer, head)  # (T, T)
    toks = a.tokens[layer].astype(np.float64)  # (T, D)
    sim = _cos(toks[t], toks)  # (T,)
    norms = np.linalg.norm(toks, axis=-1)  # (T,)
    pn = norms[n:]
    outliers = np.flatnonzero(pn >= OUTLIER_FACTOR * np.median(pn))
    traj = a.tokens[:, t].astype(np.float64)  # (L+1, D)
    # token 0 is [CLS] whenever there is a prefix (as attention_views.token_label names it)
    first = a.tokens[:, 0].astype(np.float64)  # (L+1, D)
    cls = _rowcos(traj, first) if n else np.full(len(traj), np.nan)  # (L+1,)
    self_sim = _cos(traj[0], traj)  # (L+1,)
    rgb, var = pca_rgb(a.tokens[layer, n:], grid)
    return PatchView(
        patch=patch, layer=layer, head=head,
        looks_at=att[t, n:].reshape(grid), looks_at_prefix=att[t, :n],
        looked_at_by=att[n:, t].reshape(grid), looked_at_by_prefix=att[:n, t],
        similarity=sim[n:].reshape(grid), similarity_prefix=sim[:n],
        norms=pn.reshape(grid), prefix_norms=norms[:n], outliers=outliers,
        pca=rgb, pca_var=var, norm_trajectory=np.linalg.norm(traj, axis=-1), cls_similarity=cls,
        self_similarity=self_sim,
    )


__all__ = ["OUTLIER_FACTOR", "pca_rgb", "patch_lens", "lens_layer", "PatchView", "follow"]
