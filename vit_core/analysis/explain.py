"""One analysis per (model, image): the trace plus everything the explainer pages derive from it.

The app runs ``analyze`` once per image and model and caches the result, so every page and every
widget move afterwards only slices small numpy arrays. Model-level figures that do not depend on
the image (position similarity, filter components) come from ``model_figures``.

The analysis keeps the tokens between blocks but not q, k and v: a page shows one layer's at a
time, and ``layer_qkv`` recomputes them from that layer's input tokens, bit for bit as the trace
did. Keeping all layers' would cost 3 x 6.9 MB per ViT-B/16 image in the shared cache.

Attention is kept in float16 (11 MB instead of 22 per ViT-B/16 image: a hall's cache holds a class
of 100 in half the memory). Pictures and percentages need three digits; every figure derived
in bulk (rollout, attention distance) is computed from the float32 attention before it is stored,
and the pages that compare the model's attention with a recomputation take that layer's float32
attention from ``layer_attention``, bit for bit as the trace had it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vit_core.analysis import maps
from vit_core.model import VisionTransformer


@dataclass(frozen=True)
class Analysis:
    """Everything the pages show about one image, as small numpy arrays (read-only)."""

    image: np.ndarray  # (H, W, 3) uint8: what the model sees, after resize, crop and un-normalise
    grid: tuple[int, int]  # (gh, gw)
    patch_size: int
    num_prefix_tokens: int
    patches: np.ndarray  # (N, C*P*P) normalised input values of each patch
    patch_embed: np.ndarray  # (N, D)
    tokens: np.ndarray  # (L+1, T, D) encoder input, then the output of each block: tokens[l] enters block l
    attn: np.ndarray  # (L, h, T, T) post-softmax, float16 (layer_attention: one layer's float32)
    rollout: np.ndarray  # (L, T, T) mean fusion, no discard
    distance: np.ndarray  # (L, h) mean attention distance in pixels
    probs: np.ndarray  # (C,) softmax of the logits (empty for feature-only models)
    lens: np.ndarray  # (L, C) logit lens: prediction read from [CLS] after each block
    conv_unfold_diff: float  # max |conv patch embedding - (unfold @ W^T + b)|
    seconds: float  # time the analysis took

    @property
    def depth(self) -> int:
        return self.attn.shape[0]

    @property
    def num_heads(self) -> int:
        return self.attn.shape[1]

    @property
    def num_tokens(self) -> int:
        return self.attn.shape[-1]

    @property
    def head_dim(self) -> int:
        """d_k, the width of one head's q, k and v: D / h, as ``model.Attention`` splits D."""
        return self.tokens.shape[-1] // self.num_heads


# One layer's q, k, v, each (h, T, hd) float32: what ``layer_qkv`` returns.
QKV = tuple[np.ndarray, np.ndarray, np.ndarray]


def image_view(x: torch.Tensor, data_config: dict) -> np.ndarray:
    """Undo the normalisation of one input (3, H, W) to show exactly what the model sees."""
    mean = torch.tensor(data_config["mean"]).view(3, 1, 1)
    std = torch.tensor(data_config["std"]).view(3, 1, 1)
    img = (x * std + mean).clamp(0, 1).permute(1, 2, 0)  # (H, W, 3)
    return (img * 255).round().to(torch.uint8).numpy()


def analyze(model: VisionTransformer, transform, data_config: dict, image: Image.Image) -> Analysis:
    """Trace one image through the model and derive every per-image figure the pages use.

    Args:
        model: a model in eval mode (shared; nothing is stored on it).
        transform: the model's preprocessing (PIL -> normalised tensor).
        data_config: timm data config (mean/std) for showing the model's view of the image.
        image: an RGB PIL image.
    """
    start = time.perf_counter()
    device = next(model.parameters()).device
    x = transform(image).unsqueeze(0).to(device)  # (1, 3, H, W)
    tr = model.trace(x)
    attn = torch.stack([a[0] for a in tr.attn]).float().cpu()  # (L, h, T, T)
    rollout = maps.attention_rollout(attn, num_prefix_tokens=tr.num_prefix_tokens)
    distance = maps.mean_attention_distance(
        list(attn), tr.grid, model.cfg.patch_size, num_prefix_tokens=tr.num_prefix_tokens
    )
    has_head = model.cfg.num_classes > 0
    probs = tr.logits[0].float().softmax(-1) if has_head else torch.zeros(0)
    lens = maps.logit_lens(model, tr)[:, 0] if has_head else torch.zeros(len(tr.attn), 0)

    def np32(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().cpu().numpy()

    return Analysis(
        image=image_view(x[0].cpu(), data_config),
        grid=tuple(tr.grid),
        patch_size=model.cfg.patch_size,
        num_prefix_tokens=tr.num_prefix_tokens,
        patches=np32(tr.patches[0]),
        patch_embed=np32(tr.patch_embed[0]),
        tokens=np32(torch.stack([t[0] for t in tr.tokens])),
        attn=attn.half().numpy(),  # float16: see the module docstring
        rollout=np32(rollout),
        distance=np32(distance),
        probs=np32(probs),
        lens=np32(lens),
        conv_unfold_diff=float(maps.conv_vs_unfold(model, tr)),
        seconds=time.perf_counter() - start,
    )


def layer_qkv(model: VisionTransformer, a: Analysis, layer: int) -> QKV:
    """One block's q, k and v, recomputed from its input tokens exactly as ``model.trace`` did.

    The trace ran ``qkv_heads(norm1(tokens[layer]))`` on the same model; the same modules on the
    same input (batch 1, the model's device and dtype) give the same numbers, bit for bit. One
    layer costs one LayerNorm and one D -> 3D linear over T tokens (a few ms for ViT-B/16 on CPU).

    Args:
        model: the model ``a`` was computed with, in eval mode (shared; nothing is stored on it).
        a: an analysis of that model.
        layer: the block, counted from 0.

    Returns:
        (q, k, v), each (h, T, hd) float32, with q and k after the model's q/k norm (if any),
        as the trace's ``q[layer][0]``, ``k[layer][0]`` and ``v[layer][0]``.

    Raises:
        IndexError: ``layer`` is not in 0..L-1.
    """
    blk, x = _block_input(model, a, layer)
    with torch.no_grad():
        q, k, v = blk.attn.qkv_heads(blk.norm1(x))  # 3 x (1, h, T, hd)
    return tuple(t[0].float().cpu().numpy() for t in (q, k, v))  # 3 x (h, T, hd)


def _block_input(model: VisionTransformer, a: Analysis, layer: int):
    """Block ``layer`` and its input tokens (1, T, D), on the model's device and dtype, as the trace fed it."""
    if not 0 <= layer < a.depth:
        raise IndexError(f"layer {layer} is not in 0..{a.depth - 1}")
    p = next(model.parameters())
    # float32 holds float16/bfloat16 values exactly, so the cast back to the model's dtype is lossless
    x = torch.from_numpy(a.tokens[layer]).to(device=p.device, dtype=p.dtype).unsqueeze(0)  # (1, T, D)
    return model.blocks[layer], x


def layer_attention(model: VisionTransformer, a: Analysis, layer: int) -> np.ndarray:
    """One block's attention probabilities in float32, recomputed exactly as ``model.trace`` had them.

    The analysis stores attention in float16. The trace ran ``attn.explicit(norm1(tokens[layer]))``;
    the same modules on the same input give the same numbers, bit for bit (as ``layer_qkv``).

    Returns:
        (h, T, T) float32, rows summing to 1.

    Raises:
        IndexError: ``layer`` is not in 0..L-1.
    """
    blk, x = _block_input(model, a, layer)
    with torch.no_grad():
        _, parts = blk.attn.explicit(blk.norm1(x))
    return parts["attn"][0].float().cpu().numpy()  # (h, T, T)


@dataclass(frozen=True)
class ModelFigures:
    """Figures that depend on the weights only (computed once per model)."""

    pos_similarity: np.ndarray  # (N, gh, gw) cosine similarity tiles (paper Fig 7 centre)
    filter_pcs: np.ndarray  # (k, P, P, C) in [0, 1] (paper Fig 7 left)
    filter_pcs_var: np.ndarray  # (k,) explained variance ratio
    grid: tuple[int, int]


def model_figures(model: VisionTransformer, k: int = 28) -> ModelFigures:
    grid = model.cfg.grid_size
    with torch.no_grad():
        sim = maps.position_similarity(maps.patch_pos_embed(model).float().cpu(), grid)
        pcs, var = maps.patch_embed_pcs(model.patch_embed.proj.weight.float().cpu(), k=k)
    return ModelFigures(sim.numpy(), pcs.numpy(), var.numpy(), grid)


def rollout_with(a: Analysis, head_fusion: str = "mean", discard_ratio: float = 0.0) -> np.ndarray:
    """Rollout with other options, recomputed from the cached attention (cheap: L small matmuls)."""
    if head_fusion == "mean" and discard_ratio == 0.0:
        return a.rollout
    r = maps.attention_rollout(
        torch.from_numpy(a.attn).float(), head_fusion=head_fusion, discard_ratio=discard_ratio,
        num_prefix_tokens=a.num_prefix_tokens,
    )
    return r.numpy()


def patch_map(a: Analysis, row: np.ndarray) -> np.ndarray:
    """A length-T row over tokens -> (gh, gw) map over the patches (drops [CLS] and registers)."""
    return row[a.num_prefix_tokens :].reshape(a.grid)  # (gh, gw)
