"""Views of one cached analysis for the Self-attention, Attention maps and Prediction pages.

Everything takes the cached ``explain.Analysis`` (numpy arrays) and returns numpy arrays or
numbers: one attention row recomputed from q, k and v, [CLS] and query attention maps, head
fusion, attention distances and logit-lens tables. The analysis does not keep q, k and v: the
functions that need them take one layer's, from ``explain.layer_qkv``. No Streamlit; definitions
follow ALGORITHMS.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vit_core.analysis import maps, patches
from vit_core.analysis.explain import QKV, Analysis
from vit_core.io import loading

FUSIONS = ("mean", "max", "min")


def token_label(a: Analysis, t: int) -> str:
    """Human name of token t: [CLS], a register, or a patch with its row and column
    (``patches.patch_label``: everything counted from 0, as on every page)."""
    n = a.num_prefix_tokens
    if t < n:
        return "[CLS]" if t == 0 else f"register {t}"
    return patches.patch_label(t - n, a.grid[1])


def query_label(a: Analysis, t: int) -> str:
    """Token t named as a token index AND what it is: 'token 106 = patch 105 (row 7, column 7)'."""
    return f"token {int(t)} = {token_label(a, t)}"


def query_similarity(a: Analysis, layer: int, head: str | int = "mean") -> float:
    """How alike the attention maps of different query patches are in one layer (0-based): the mean
    Pearson correlation over all pairs of patch queries of their rows over the patch keys.

    Near 1: the layer (or head: "mean" of heads, or a 0-based index) looks at the same few patches
    whatever the query; near 0: each query looks somewhere of its own.
    """
    n = a.num_prefix_tokens
    att = a.attn[layer, :, n:, n:].astype(np.float32)  # (h, N, N): patch queries x patch keys
    rows = (att.mean(0) if head == "mean" else att[int(head)]).astype(np.float64)  # (N, N)
    rows = rows - rows.mean(1, keepdims=True)
    norm = np.linalg.norm(rows, axis=1)
    ok = norm > 0  # a constant row has no correlation to speak of
    if ok.sum() < 2:
        return float("nan")
    z = rows[ok] / norm[ok, None]
    c = z @ z.T  # (k, k) correlations
    k = len(z)
    return float((c.sum() - np.trace(c)) / (k * (k - 1)))


def _check_qkv(a: Analysis, qkv: QKV) -> None:
    """Refuse q, k, v that cannot belong to ``a`` (another model, or all layers stacked)."""
    want = (a.num_heads, a.num_tokens, a.head_dim)
    got = [t.shape for t in qkv]
    if len(got) != 3 or any(g != want for g in got):
        raise ValueError(f"qkv must be one layer's (q, k, v), each (h, T, hd) = {want}; got {got}")


def _check_attn(a: Analysis, attn: np.ndarray) -> None:
    """Refuse an attention that is not one layer's float32 (h, T, T) of ``a``'s model."""
    want = (a.num_heads, a.num_tokens, a.num_tokens)
    if attn.shape != want or attn.dtype != np.float32:
        raise ValueError(f"attn must be one layer's float32 attention (h, T, T) = {want} "
                         f"(explain.layer_attention); got {attn.dtype} {attn.shape}")


@dataclass(frozen=True)
class AttentionStep:
    """softmax(q K^T / sqrt(d)) V for one layer, head and query token, recomputed from q, k, v."""

    q: np.ndarray  # (hd,) the query vector
    k: np.ndarray  # (T, hd) every key
    scores: np.ndarray  # (T,) q . k_j / sqrt(hd)
    weights: np.ndarray  # (T,) softmax of the scores, recomputed here
    stored: np.ndarray  # (T,) the model's own attention row, float32 (explain.layer_attention)
    softmax_diff: float  # max |weights - stored|
    out: np.ndarray  # (hd,) sum_j weights_j v_j
    out_ref: np.ndarray  # (hd,) stored @ v[head]
    out_diff: float  # max |out - out_ref|
    best_key: int  # the key with the highest score


def attention_step(a: Analysis, qkv: QKV, layer: int, head: int, query: int, attn: np.ndarray) -> AttentionStep:
    """Recompute one attention row from the model's real q, k, v.

    Args:
        a: the image's analysis.
        qkv: layer ``layer``'s (q, k, v), each (h, T, hd): ``explain.layer_qkv(model, a, layer)``.
        attn: layer ``layer``'s own attention (h, T, T) float32: ``explain.layer_attention(model, a, layer)``.
        layer: the block, counted from 0.
        head: the head, counted from 0.
        query: the query token (0 = [CLS] when the model has one).

    Raises:
        ValueError: ``qkv`` is not one layer's q, k, v of this analysis's model.
    """
    _check_qkv(a, qkv)
    _check_attn(a, attn)
    q_all, k_all, v_all = qkv
    q = q_all[head, query].astype(np.float64)  # (hd,)
    k = k_all[head].astype(np.float64)  # (T, hd)
    v = v_all[head].astype(np.float64)  # (T, hd)
    scores = k @ q / np.sqrt(q.shape[0])  # (T,)
    e = np.exp(scores - scores.max())  # shifted by the maximum so exp cannot overflow
    weights = e / e.sum()  # (T,)
    stored = attn[head, query]  # (T,)
    out = weights @ v  # (hd,)
    out_ref = stored @ v_all[head]  # (hd,), float32 as the model did
    return AttentionStep(
        q=q, k=k, scores=scores, weights=weights, stored=stored,
        softmax_diff=float(np.abs(weights - stored).max()), out=out, out_ref=out_ref,
        out_diff=float(np.abs(out - out_ref).max()), best_key=int(scores.argmax()),
    )


@dataclass(frozen=True)
class HeadSoftmax:
    """softmax(Q K^T / sqrt(d)) for a whole head, recomputed in float64 from the model's q and k."""

    raw: np.ndarray  # (T, T) Q K^T
    scores: np.ndarray  # (T, T) Q K^T / sqrt(d)
    weights: np.ndarray  # (T, T) row-wise softmax of the scores
    diff: float  # max |weights - the model's own attention|
    row_sum_error: float  # max |row sum - 1|


def head_softmax(a: Analysis, qkv: QKV, layer: int, head: int, attn: np.ndarray) -> HeadSoftmax:
    """Recompute one head's whole attention matrix and compare it with the model's.

    Args:
        a: the image's analysis.
        qkv: layer ``layer``'s (q, k, v), each (h, T, hd): ``explain.layer_qkv(model, a, layer)``.
        attn: layer ``layer``'s own attention (h, T, T) float32: ``explain.layer_attention(model, a, layer)``.
        layer: the block, counted from 0.
        head: the head, counted from 0.

    Raises:
        ValueError: ``qkv`` is not one layer's q, k, v of this analysis's model.
    """
    _check_qkv(a, qkv)
    _check_attn(a, attn)
    q, k = qkv[0][head].astype(np.float64), qkv[1][head].astype(np.float64)  # (T, d)
    raw = q @ k.T  # (T, T)
    scores = raw / np.sqrt(q.shape[-1])
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))  # shifted so exp cannot overflow
    weights /= weights.sum(axis=1, keepdims=True)
    return HeadSoftmax(raw=raw, scores=scores, weights=weights,
                       diff=float(np.abs(weights - attn[head]).max()),
                       row_sum_error=float(np.abs(weights.sum(axis=1) - 1).max()))


def cls_maps(a: Analysis) -> np.ndarray:
    """[CLS] attention over the patches for every layer and head: (L, h, gh, gw)."""
    attn = torch.from_numpy(a.attn).float()  # (L, h, T, T) from the stored float16
    return np.stack([maps.cls_attention(attn[l], a.grid, a.num_prefix_tokens).numpy()
                     for l in range(a.depth)])


def query_maps(a: Analysis, layer: int, query: int) -> np.ndarray:
    """Where token `query` looks in `layer` (0-based): (h, gh, gw), one map per head."""
    # float32 copy of one layer: the maps never pin the analysis's array
    return maps.query_attention(torch.from_numpy(a.attn[layer].astype(np.float32)), query, a.grid,
                                a.num_prefix_tokens).numpy()


def fuse(maps: np.ndarray, how: str) -> np.ndarray:
    """Combine per-head maps (h, ...) by mean, max or min."""
    return {"mean": maps.mean(0), "max": maps.max(0), "min": maps.min(0)}[how]


def distances(a: Analysis, renormalize: bool) -> np.ndarray:
    """Mean attention distance (L, h) in pixels for this image; renormalize after dropping [CLS]."""
    if not renormalize:
        return a.distance
    return maps.mean_attention_distance(torch.from_numpy(a.attn).float(), a.grid, a.patch_size,
                                            num_prefix_tokens=a.num_prefix_tokens, renormalize=True).numpy()


def lens_table(a: Analysis, class_names: list[str], classes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Logit-lens probabilities (L, k) of the given classes, and their names."""
    names = [loading.class_name(class_names, i) for i in classes]
    return a.lens[:, classes], names


def lens_top(a: Analysis) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: the class [CLS] would predict if the network stopped there, and its probability."""
    top = a.lens.argmax(1)  # (L,)
    return top, a.lens[np.arange(len(top)), top]


def lens_vs_output(a: Analysis) -> float:
    """max |logit lens after the last block - the model's output probabilities| (should be ~0)."""
    return float(np.abs(a.lens[-1] - a.probs).max())
