"""The numbers the explainer shows, as pure functions of a model, a trace or attention maps.

Definitions follow /work/shared/reference/ALGORITHMS.md. Nothing here touches Streamlit or stores
state on the model: one cached model is shared by every session of the app. Unless stated
otherwise every function returns a detached float32 CPU tensor.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from vit_core.io.loading import class_name
from vit_core.model import VisionTransformer, ViTTrace

_FUSIONS = ("mean", "max", "min")


def _out(t: torch.Tensor) -> torch.Tensor:
    return t.detach().float().cpu()


def _one_image(a: torch.Tensor) -> torch.Tensor:
    """(h, T, T) from (h, T, T) or a single-image (1, h, T, T), e.g. straight from a ViTTrace."""
    if a.dim() == 4:
        if a.shape[0] != 1:
            raise ValueError(f"Expected one image, got a batch of {a.shape[0]} attention maps.")
        a = a[0]
    if a.dim() != 3 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"Expected attention of shape (h, T, T), got {tuple(a.shape)}.")
    return a


def _stack_layers(attn: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    if isinstance(attn, torch.Tensor) and attn.dim() == 4:
        return _out(attn)  # already (L, h, T, T)
    return torch.stack([_out(_one_image(a)) for a in attn])  # (L, h, T, T)


def _discard_smallest(a: torch.Tensor, discard_ratio: float) -> torch.Tensor:
    """Zero exactly int(ratio * count) of the smallest entries outside the CLS row and column.

    CLS (index 0) is spared because its row is what the map reads out: dropping those entries
    would change the answer rather than denoise it.
    """
    T = a.shape[-1]
    eligible = torch.ones(T, T, dtype=torch.bool)
    eligible[0, :] = False
    eligible[:, 0] = False
    n_drop = int(discard_ratio * int(eligible.sum()))
    if n_drop == 0:
        return a
    # inf keeps the protected entries out of the smallest-n; stable sort breaks ties by index
    masked = torch.where(eligible, a, torch.full_like(a, float("inf"))).flatten()  # (T*T,)
    drop = torch.sort(masked, stable=True).indices[:n_drop]
    a = a.flatten().clone()  # (T*T,)
    a[drop] = 0.0
    return a.reshape(T, T)  # (T, T)


def attention_rollout(
    attn: Sequence[torch.Tensor] | torch.Tensor,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020) for one image.

    Args:
        attn: L post-softmax attention maps (h, T, T) (or (1, h, T, T)), or a stacked (L, h, T, T).
        head_fusion: how heads are combined per layer: "mean", "max" or "min".
        discard_ratio: fraction in [0, 1) of the non-CLS entries to zero in each fused layer.
        num_prefix_tokens: CLS + registers; only checked here (CLS is token 0 either way).

    Returns:
        (L, T, T): R_1..R_L, where R_l = A'_l @ R_{l-1}, R_0 = I and A' = rownorm(0.5 A + 0.5 I).

    Raises:
        ValueError: unknown head_fusion or discard_ratio outside [0, 1).
    """
    if head_fusion not in _FUSIONS:
        raise ValueError(f"head_fusion must be one of {_FUSIONS}, got {head_fusion!r}.")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}.")
    A = _stack_layers(attn)  # (L, h, T, T)
    L, _, T, _ = A.shape
    if T <= num_prefix_tokens:
        raise ValueError(f"{T} tokens cannot hold {num_prefix_tokens} prefix tokens and patches.")
    fused = {"mean": A.mean(1), "max": A.amax(1), "min": A.amin(1)}[head_fusion]  # (L, T, T)
    eye = torch.eye(T)
    R = eye
    out = []
    for layer in range(L):
        a = _discard_smallest(fused[layer], discard_ratio)
        a = 0.5 * a + 0.5 * eye
        # per-row sum: a flattened sum (the popular bug) would shrink every row by ~1/T per layer
        a = a / a.sum(dim=-1, keepdim=True)
        R = a @ R
        out.append(R)
    return torch.stack(out)  # (L, T, T)


def rollout_map(
    rollout: torch.Tensor, layer: int, grid: tuple[int, int], num_prefix_tokens: int = 1
) -> torch.Tensor:
    """CLS row of the rollout after ``layer`` (1-based), over patches: (gh, gw)."""
    L = rollout.shape[0]
    if not 1 <= layer <= L:
        raise ValueError(f"layer must be in 1..{L}, got {layer}.")
    return _out(rollout[layer - 1, 0, num_prefix_tokens:]).reshape(grid)  # (gh, gw)


def patch_pos_embed(model: VisionTransformer) -> torch.Tensor:
    """The model's learned position embeddings of the N patch positions: (N, D)."""
    pos = model.pos_embed[0]  # (T or N, D)
    if not model.cfg.no_embed_class:
        pos = pos[model.num_prefix_tokens :]  # (N, D)
    return _out(pos)


def position_similarity(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Cosine similarity of patch position embeddings (ViT paper Fig 7 centre).

    Args:
        pos_embed: (N, D) patch positions only.
        grid: (gh, gw) with gh * gw == N.

    Returns:
        (N, gh, gw): tile i is the similarity of position i to every position.
    """
    p = F.normalize(_out(pos_embed), dim=-1)  # (N, D)
    return (p @ p.T).reshape(-1, *grid)  # (N, N) -> (N, gh, gw)


def _cell_distances(grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    gh, gw = grid
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    cells = torch.stack([rows.flatten(), cols.flatten()], dim=-1).float()  # (N, 2), row-major
    return patch_size * torch.cdist(cells, cells)  # (N, N) pixels


def mean_attention_distance(
    attn: Sequence[torch.Tensor] | torch.Tensor,
    grid: tuple[int, int],
    patch_size: int,
    num_prefix_tokens: int = 1,
    renormalize: bool = False,
) -> torch.Tensor:
    """Attention-weighted distance in pixels between query and key patches (paper Fig 7 right).

    Args:
        attn: L maps, each (h, T, T) or (B, h, T, T); or a stacked (L, h, T, T) for one image.
        grid: (gh, gw) patch grid.
        patch_size: P, pixels per grid cell.
        num_prefix_tokens: CLS + registers, dropped from both queries and keys.
        renormalize: rescale each patch-to-patch row to sum 1 after dropping the prefix keys,
            so mass a query sends to CLS does not count as "short distance".

    Returns:
        (L, h): mean over patch queries (and images) of sum_j A[i, j] d(i, j).
    """
    d = _cell_distances(grid, patch_size)  # (N, N)
    n = num_prefix_tokens
    out = []
    for a in attn:
        a = _out(a)
        if a.dim() == 3:
            a = a.unsqueeze(0)  # (1, h, T, T)
        a = a[:, :, n:, n:]  # (B, h, N, N)
        if renormalize:
            a = a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        out.append((a * d).sum(-1).mean(dim=(0, 2)))  # (B, h, N) -> (h,)
    return torch.stack(out)  # (L, h)


def query_attention(
    attn_layer: torch.Tensor, query: int, grid: tuple[int, int], num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Where token ``query`` (index in T; patch p is num_prefix_tokens + p) looks: (h, gh, gw)."""
    a = _one_image(_out(attn_layer))  # (h, T, T)
    return a[:, query, num_prefix_tokens:].reshape(a.shape[0], *grid)  # (h, N) -> (h, gh, gw)


def cls_attention(attn_layer: torch.Tensor, grid: tuple[int, int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """CLS attention over patches, per head: (h, gh, gw)."""
    return query_attention(attn_layer, 0, grid, num_prefix_tokens)


def attention_entropy(attn_layer: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each query's attention row: (h, T). Low means focused."""
    a = _one_image(_out(attn_layer))  # (h, T, T)
    return -(a * a.clamp_min(1e-12).log()).sum(-1)  # (h, T)


def class_relevance(
    model: VisionTransformer, x: torch.Tensor, target: int, num_prefix_tokens: int | None = None
) -> torch.Tensor:
    """Class-specific relevance of each patch (Chefer, Gur & Wolf 2021, generic rule).

    Args:
        model: the ViT; neither modified nor required to have trainable parameters.
        x: normalised image(s) (B, C, H, W) or (C, H, W); only the first image is explained.
        target: class index whose logit is explained.
        num_prefix_tokens: defaults to the model's.

    Returns:
        (gh, gw): R[CLS, patches] with R = I, R <- R + mean_h(max(0, dA * A)) @ R per layer.
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)  # (1, C, H, W)
    # A fresh leaf that requires grad guarantees a graph through attention even when the
    # parameters are frozen; detaching keeps the caller's tensor and graph untouched.
    x1 = x[:1].detach().clone().requires_grad_(True)  # (1, C, H, W)
    with torch.enable_grad():
        tr = model.trace(x1, requires_grad=True)
        C = tr.logits.shape[-1]
        if not 0 <= target < C:
            raise ValueError(f"target must be in 0..{C - 1}, got {target}.")
        # autograd.grad returns gradients in the order of `inputs`, i.e. layer order, unlike
        # backward hooks (reverse order); it also leaves every .grad untouched.
        grads = torch.autograd.grad(tr.logits[0, target], tr.attn)
    n = tr.num_prefix_tokens if num_prefix_tokens is None else num_prefix_tokens
    T = tr.attn[0].shape[-1]
    R = torch.eye(T)
    for a, g in zip(tr.attn, grads):
        abar = (g[0] * a[0]).detach().float().cpu().clamp(min=0).mean(0)  # (h, T, T) -> (T, T)
        R = R + abar @ R
    return R[0, n:].reshape(tr.grid)  # (gh, gw)


def logit_lens(model: VisionTransformer, trace: ViTTrace) -> torch.Tensor:
    """Class probabilities if the network stopped after each block: (L, B, C).

    Applies the model's own final norm and head (pooling as forward_head does) to each block's
    output; the last entry equals softmax(trace.logits).
    """
    with torch.no_grad():
        probs = [model.forward_head(model.norm(z)).softmax(-1) for z in trace.tokens[1:]]
    return _out(torch.stack(probs))  # (L, B, C)


def patch_embed_pcs(weight: torch.Tensor, k: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal components of the patch-embedding filters (ViT paper Fig 7 left).

    Args:
        weight: conv weight (D, C, P, P); each of the D filters is one sample.
        k: components to keep, clipped to min(D, C*P*P).

    Returns:
        components (k, P, P, C) min-max scaled to [0, 1] per tile, and the explained variance
        ratio (k,), descending.
    """
    w = _out(weight)
    D, C, P, _ = w.shape
    k = max(0, min(k, D, C * P * P))
    X = w.reshape(D, C * P * P)  # (D, C*P*P), channel-major like the conv
    X = X - X.mean(0, keepdim=True)
    _, S, Vh = torch.linalg.svd(X, full_matrices=False)  # Vh (min(D, CPP), C*P*P)
    var = S**2
    ratio = var / var.sum().clamp_min(1e-12)
    comps = Vh[:k].reshape(k, C, P, P).permute(0, 2, 3, 1)  # (k, P, P, C)
    flat = comps.reshape(k, -1)  # (k, P*P*C)
    lo = flat.min(1, keepdim=True).values
    span = (flat.max(1, keepdim=True).values - lo).clamp_min(1e-12)
    return ((flat - lo) / span).reshape(k, P, P, C), ratio[:k]  # (k, P, P, C), (k,)


def conv_vs_unfold(model: VisionTransformer, trace: ViTTrace) -> float:
    """Max |conv patch embedding - (unfolded patches @ W^T + b)|: the two are the same map."""
    proj = model.patch_embed.proj
    with torch.no_grad():
        W = proj.weight.reshape(proj.out_channels, -1)  # (D, C*P*P)
        manual = trace.patches @ W.T  # (B, N, D)
        if proj.bias is not None:
            manual = manual + proj.bias
        return float((trace.patch_embed - manual).abs().max())


def topk(probs: torch.Tensor, k: int, class_names: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """The k most probable classes as (name, probability), most probable first."""
    p = _out(probs).flatten()  # (C,)
    vals, idx = p.topk(min(k, p.numel()))
    names = class_names if class_names is not None else []
    return [(class_name(names, i), float(v)) for v, i in zip(vals.tolist(), idx.tolist())]


__all__ = [
    "attention_rollout", "rollout_map", "patch_pos_embed", "position_similarity",
    "mean_attention_distance", "cls_attention", "query_attention", "attention_entropy",
    "class_relevance", "logit_lens", "patch_embed_pcs", "conv_vs_unfold", "topk",
]
