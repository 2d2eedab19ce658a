"""What-if experiments on a ViT: hide patches, shuffle them, drop position embeddings, read out
the mean of the patch tokens instead of [CLS], or run at another input size.

Everything here is a pure function of a model and a normalised input ``x`` (B, 3, H, W). The model
is shared by every session of the app, so nothing is stored on it and no weight is changed: the
variations run through ``forward_with``, a functional forward pass that takes the options as
arguments and otherwise reuses the model's own modules (patch embedding, blocks, norms, head).

The facts these experiments make visible (Dosovitskiy et al. 2020):
    * without position embeddings self-attention is permutation-equivariant: shuffled patches give
      the same set of patch outputs, shuffled, and the same [CLS] output (the embeddings of Sec. 3.1
      are the only source of order; App. D.4 ablates them);
    * the model reads [CLS]; averaging the patch tokens works only when trained that way (App. D.3);
    * position embeddings are resampled in 2-D for another input size (Sec. 3.2).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vit_core.analysis import explain, maps
from vit_core.io import transforms
from vit_core.model import VisionTransformer

MASK_MODES = ("mean", "blur", "noise")
POS_MODES = ("learned", "none", "mean")
READOUTS = ("cls", "mean")


# --- hiding patches ------------------------------------------------------------------------------


def _gaussian_matrix(n: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """(n, n) row-stochastic Gaussian weights: row i averages the pixels around i (cut at 3 sigma,
    renormalised at the borders)."""
    i = torch.arange(n, dtype=like.dtype, device=like.device)
    d = i[:, None] - i[None, :]  # (n, n)
    w = torch.exp(-0.5 * (d / sigma) ** 2) * (d.abs() <= math.ceil(3 * sigma))
    return w / w.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) as two matrix products, G_h @ x @ G_w^T.

    A depthwise conv with a 6-sigma kernel (97 taps for sigma 16) took ~250 ms per 224 px image on
    this project's CPU; these two (H x H) and (W x W) matmuls take a few ms.
    """
    gh = _gaussian_matrix(x.shape[-2], sigma, x)  # (H, H)
    gw = _gaussian_matrix(x.shape[-1], sigma, x)  # (W, W)
    return gh @ x @ gw.T  # (B, C, H, W)


def baseline(x: torch.Tensor, mode: str, patch_size: int, seed: int = 0) -> torch.Tensor:
    """What a hidden patch shows instead, for every pixel: (B, C, H, W) like ``x``.

    Args:
        x: normalised images (B, C, H, W).
        mode: "mean" (the image's mean colour), "blur" (Gaussian, sigma = one patch: the patch's
            colours stay, its shapes go) or "noise" (Gaussian noise with the image's per-channel
            mean and standard deviation, seeded).
        patch_size: P, sets the blur radius.
        seed: for "noise".
    """
    if mode == "mean":
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).clone()  # (B, C, H, W)
    if mode == "blur":
        return gaussian_blur(x, float(patch_size))
    if mode == "noise":
        g = torch.Generator().manual_seed(int(seed))
        z = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
        mu = x.mean(dim=(-2, -1), keepdim=True)  # (B, C, 1, 1)
        sd = x.std(dim=(-2, -1), keepdim=True)
        return mu + sd * z
    raise ValueError(f"mode must be one of {MASK_MODES}, got {mode!r}.")


def patch_mask(patches: Sequence[int], grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """(gh*P, gw*P) bool, True on the pixels of the given patches (row-major indices)."""
    gh, gw = grid
    cells = torch.zeros(gh * gw, dtype=torch.bool)
    idx = torch.as_tensor(list(patches), dtype=torch.long)
    if idx.numel() and (idx.min() < 0 or idx.max() >= gh * gw):
        raise ValueError(f"patch indices must be in 0..{gh * gw - 1}.")
    cells[idx] = True
    P = patch_size
    return cells.view(gh, gw).repeat_interleave(P, 0).repeat_interleave(P, 1)  # (gh*P, gw*P)


def mask_patches(x: torch.Tensor, patches: Sequence[int], patch_size: int, mode: str = "mean",
                 seed: int = 0) -> torch.Tensor:
    """``x`` (B, C, H, W) with the given patches replaced by ``baseline(x, mode)``; a new tensor."""
    H, W = x.shape[-2:]
    grid = (H // patch_size, W // patch_size)
    m = torch.zeros(H, W, dtype=torch.bool, device=x.device)
    m[: grid[0] * patch_size, : grid[1] * patch_size] = patch_mask(patches, grid, patch_size)
    return torch.where(m, baseline(x, mode, patch_size, seed), x)


def top_patches(saliency: np.ndarray | torch.Tensor, k: int) -> list[int]:
    """The k patches with the highest saliency (row-major indices), highest first."""
    s = torch.as_tensor(np.asarray(saliency, dtype=np.float32)).flatten()  # (N,)
    return torch.sort(s, descending=True, stable=True).indices[:k].tolist()


def random_patches(n: int, k: int, seed: int = 0) -> list[int]:
    """k distinct patches out of n, drawn with a seeded generator."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[:k].tolist()


# --- a functional forward pass with options ------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One forward pass under some intervention."""

    logits: torch.Tensor  # (B, C), or pooled features when the model has no head
    features: torch.Tensor  # (B, T, D) every token after the final norm (what the head can read)
    attn: list[torch.Tensor] | None  # L x (B, h, T, T) when asked for
    grid: tuple[int, int]
    num_prefix_tokens: int

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.float().softmax(-1)


def position_embeddings(model: VisionTransformer, grid: tuple[int, int], mode: str = "learned") -> torch.Tensor:
    """The position embeddings added for a gh x gw grid, as learned (resampled by timm's
    ``resample_abs_pos_embed`` for another grid), all zero ("none"), or with every patch position
    given the mean of the patch positions ("mean"; prefix positions keep their own)."""
    pos = model.resized_pos_embed(grid)  # (1, T or N, D)
    if mode == "learned":
        return pos
    if mode == "none":
        return torch.zeros_like(pos)
    if mode == "mean":
        n = 0 if model.cfg.no_embed_class else model.num_prefix_tokens
        patch = pos[:, n:].mean(dim=1, keepdim=True).expand(-1, pos.shape[1] - n, -1)  # (1, N, D)
        return torch.cat([pos[:, :n], patch], dim=1)  # (1, T or N, D)
    raise ValueError(f"pos must be one of {POS_MODES}, got {mode!r}.")


def forward_with(model: VisionTransformer, x: torch.Tensor, pos: str = "learned", readout: str | None = None,
                 attention: bool = False) -> Outcome:
    """The model's forward pass with its position embeddings and readout as options.

    Args:
        model: the shared ViT (read only).
        x: normalised images (B, C, H, W); any size the patch grid fits (embeddings resampled).
        pos: "learned", "none" (no position information at all) or "mean" (see position_embeddings).
        readout: "cls" (token 0) or "mean" (mean of the patch tokens), each through the model's
            norm, fc_norm and head; None reads out as the model was trained.
        attention: also return every block's attention probabilities (explicit path).

    Returns:
        An Outcome; with the defaults its logits equal ``model(x)`` to float rounding.
    """
    n, P = model.num_prefix_tokens, model.cfg.patch_size
    grid = (x.shape[-2] // P, x.shape[-1] // P)
    with torch.no_grad():
        B = x.shape[0]
        emb = model.patch_embed(x)  # (B, N, D)
        pe = position_embeddings(model, grid, pos)  # (1, T or N, D)
        prefix = [t.expand(B, -1, -1) for t in (model.cls_token, model.reg_token) if t is not None]
        if model.cfg.no_embed_class:
            z = torch.cat(prefix + [emb + pe], dim=1)  # (B, T, D)
        else:
            z = torch.cat(prefix + [emb], dim=1) + pe  # (B, T, D)
        z = model.norm_pre(z)
        attn = []
        for blk in model.blocks:
            if attention:
                z, parts = blk.explicit(z)
                attn.append(parts["attn"])
            else:
                z = blk(z)
        feats = model.norm(z)  # (B, T, D)
        how = readout or ("mean" if model.cfg.global_pool == "avg" else "cls")
        if how not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {how!r}.")
        pooled = feats[:, n:].mean(dim=1) if how == "mean" else feats[:, 0]  # (B, D)
        logits = model.head(model.fc_norm(pooled))
    return Outcome(logits, feats, attn if attention else None, grid, n)


def predict(model: VisionTransformer, x: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Class probabilities (B, C) from the fast path, in chunks of ``batch_size``."""
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]).float().softmax(-1) for i in range(0, len(x), batch_size)])


@dataclass(frozen=True)
class Run:
    """What the page shows for one (intervened) input."""

    image: np.ndarray  # (H, W, 3) uint8: the input as the model saw it, un-normalised
    probs: np.ndarray  # (C,)
    rollout: np.ndarray | None  # (gh, gw) rollout after the last block; None without [CLS]
    grid: tuple[int, int]


def run(model: VisionTransformer, x: torch.Tensor, data_config: dict, pos: str = "learned",
        readout: str | None = None) -> Run:
    """Prediction and rollout of one normalised image (1, C, H, W) under the given options."""
    out = forward_with(model, x[:1], pos, readout, attention=True)
    roll = None
    if model.cfg.class_token:
        r = maps.attention_rollout([a[0] for a in out.attn], num_prefix_tokens=out.num_prefix_tokens)
        roll = maps.rollout_map(r, r.shape[0], out.grid, out.num_prefix_tokens).numpy()
    return Run(explain.image_view(x[0].cpu(), data_config), out.probs[0].cpu().numpy(), roll, out.grid)


# --- shuffling -----------------------------------------------------------------------------------


def shuffle_patches(x: torch.Tensor, perm: Sequence[int], patch_size: int) -> torch.Tensor:
    """Rearrange the patches of ``x``: the patch at position i becomes the original patch perm[i]."""
    P = patch_size
    H, W = x.shape[-2:]
    gh, gw = H // P, W // P
    crop = x[..., : gh * P, : gw * P]
    cols = F.unfold(crop, kernel_size=P, stride=P)  # (B, C*P*P, N)
    cols = cols[:, :, torch.as_tensor(list(perm), dtype=torch.long, device=x.device)]
    out = x.clone()
    out[..., : gh * P, : gw * P] = F.fold(cols, (gh * P, gw * P), kernel_size=P, stride=P)  # (B, C, gh*P, gw*P)
    return out


@dataclass(frozen=True)
class ShuffleResult:
    """The same image with its patches shuffled, run with one kind of position embedding."""

    shuffled: torch.Tensor  # (1, C, H, W) the shuffled input
    perm: np.ndarray  # (N,) patch i of the shuffled image is original patch perm[i]
    pos: str
    probs_original: np.ndarray  # (C,) unshuffled, same position embeddings
    probs_shuffled: np.ndarray  # (C,)
    patch_diff: float  # max |out_shuffled[i] - out_original[perm[i]]| over patch tokens
    cls_diff: float  # max |[CLS] out shuffled - [CLS] out original|; nan without [CLS]
    logit_diff: float  # max |logits shuffled - logits original|


def shuffle_check(model: VisionTransformer, x: torch.Tensor, pos: str = "none", seed: int = 0) -> ShuffleResult:
    """Shuffle the patches of one image (1, C, H, W) with a seeded permutation and compare outputs.

    With ``pos`` "none" or "mean" the transformer cannot tell positions apart: every patch token
    comes out the same, only permuted, and [CLS] comes out unchanged. With "learned" it can.
    """
    P, n = model.cfg.patch_size, model.num_prefix_tokens
    N = (x.shape[-2] // P) * (x.shape[-1] // P)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(int(seed)))  # (N,)
    xs = shuffle_patches(x, perm.tolist(), P)
    a, b = forward_with(model, x, pos), forward_with(model, xs, pos)
    idx = perm.to(x.device)
    patch_diff = (b.features[:, n:] - a.features[:, n:][:, idx]).abs().max()  # (1, N, D) vs permuted
    nan = torch.tensor(float("nan"))
    cls_diff = (b.features[:, 0] - a.features[:, 0]).abs().max() if model.cfg.class_token else nan
    return ShuffleResult(
        shuffled=xs.cpu(), perm=perm.numpy(), pos=pos, probs_original=a.probs[0].cpu().numpy(),
        probs_shuffled=b.probs[0].cpu().numpy(), patch_diff=float(patch_diff), cls_diff=float(cls_diff),
        logit_diff=float((b.logits - a.logits).abs().max()),
    )


# --- another input size --------------------------------------------------------------------------


def input_at_size(image: Image.Image, data_config: dict, size: int, patch_size: int) -> torch.Tensor:
    """The model's eval transform at ``size`` px (rounded to whole patches): (1, C, S, S)."""
    s = max(patch_size, int(round(size / patch_size)) * patch_size)
    tf = transforms.eval_transform({**data_config, "input_size": (3, s, s)})
    return tf(image).unsqueeze(0)  # (1, 3, S, S)


__all__ = [
    "MASK_MODES", "POS_MODES", "READOUTS", "gaussian_blur", "baseline", "patch_mask", "mask_patches",
    "top_patches", "random_patches", "Outcome", "position_embeddings", "forward_with", "predict", "Run", "run",
    "shuffle_patches", "ShuffleResult", "shuffle_check", "input_at_size",
]
