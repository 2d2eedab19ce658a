"""One image walked through the whole model, step by step: the numbers behind the Overview animation.

Every array is a real tensor of this image and model, taken from the cached ``explain.Analysis``
(patch embeddings, tokens after each block, attention, logit lens) plus two weights the analysis
does not keep (the [CLS] token and the position embeddings). Nothing is re-run through the model.

The arrays are cut down to what a browser can animate: a few pixels per patch, a sample of the
embedding dimensions, a few blocks. Which dimensions and blocks are shown is recorded with them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vit_core.analysis.explain import Analysis, patch_map
from vit_core.model import VisionTransformer


BUDGET = 10_000  # numbers per token row: ~50 dimensions of 197 tokens, about what a screen can draw


@dataclass(frozen=True)
class Walk:
    """The steps of one forward pass, small enough to ship to a browser (all numpy, read-only).

    Token rows are token-major, ``(tokens, dims)``; ``dims`` says which of the model's D embedding
    dimensions the columns are. Blocks are 1-based, as on the pages.
    """

    image: np.ndarray  # (H, W, 3) uint8: the model's view of the image
    grid: tuple[int, int]  # (gh, gw)
    patch_size: int
    in_chans: int
    embed_dim: int  # D, of which ``dims`` are shown
    num_prefix_tokens: int  # [CLS] + registers in front of the patch tokens
    reads_cls: bool  # the head reads [CLS] (else the mean of the patch tokens, global_pool="avg")
    pixels: np.ndarray  # (s*s, N, 3) uint8: column n is patch n's pixels (s x s of them, row by row)
    dims: np.ndarray  # (D',) the embedding dimensions shown, ascending
    patch_embed: np.ndarray  # (N, D') the patch embedding x_p E of each patch
    prefixed: np.ndarray  # (T, D') [CLS] (and registers) in front of the patch embeddings
    pos_embed: np.ndarray  # (T, D') the position embeddings added (zeros where a model adds none)
    encoder_in: np.ndarray  # (T, D') after the position embeddings are added: the encoder's input
    blocks: tuple[int, ...]  # the blocks shown
    block_out: np.ndarray  # (k, T, D') the tokens after each shown block
    final: np.ndarray  # (T, D') the tokens after the last block (before the final norm)
    cls_attn: np.ndarray  # (k, gh, gw) where [CLS] looks in each shown block (mean over heads)
    lens: np.ndarray  # (k, C) the class probabilities the head reads after each shown block
    rollout: np.ndarray  # (gh, gw) attention rollout of [CLS] through all blocks
    probs: np.ndarray  # (C,) the prediction (empty without a class head)
    depth: int

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_tokens(self) -> int:
        return self.prefixed.shape[0]


def shown_blocks(depth: int, k: int) -> tuple[int, ...]:
    """``k`` blocks spread from the first towards the last, which is left out: the prediction shows
    the last block's output. For k = 2: blocks 1 and 6 of ViT-B's 12, blocks 1 and 2 of 4."""
    k = max(1, min(k, depth - 1))
    return tuple(sorted({int(b) for b in np.linspace(1, depth, k + 1)[:-1].round()}))


def shown_dims(dim: int, tokens: int, budget: int) -> np.ndarray:
    """Evenly spaced embedding dimensions, about ``budget`` numbers per token row in all.

    A screen shows a row of tokens ~150 px tall, so ~50 dimensions are all it can draw anyway: 197
    tokens keep 50 of 96 or of 768 dimensions, a larger input (1,370 tokens) keeps 8.
    """
    k = int(np.clip(budget // max(1, tokens), min(8, dim), dim))
    return np.unique(np.linspace(0, dim - 1, k).round().astype(np.int64))


def patch_pixels(image: np.ndarray, grid: tuple[int, int], patch: int, side: int) -> np.ndarray:
    """Each patch's pixels as one column, ``side`` x ``side`` of them (box-averaged), row by row.

    Args:
        image: (H, W, 3) uint8, the model's view.
        grid: (gh, gw) patches.
        patch: P, the patch size in pixels.
        side: s, pixels kept per patch side (P/s x P/s pixels are averaged into one).

    Returns:
        (s*s, N, 3) uint8, patches in the model's order (left to right, top to bottom).
    """
    gh, gw = grid
    crop = Image.fromarray(image[: gh * patch, : gw * patch])
    small = np.asarray(crop.resize((gw * side, gh * side), Image.BOX))  # (gh*s, gw*s, 3)
    cells = small.reshape(gh, side, gw, side, 3).transpose(0, 2, 1, 3, 4)  # (gh, gw, s, s, 3)
    return np.ascontiguousarray(cells.reshape(gh * gw, side * side, 3).transpose(1, 0, 2))  # (s*s, N, 3)


def walk(a: Analysis, model: VisionTransformer, blocks: int = 2, budget: int = BUDGET,
         side: int = 4) -> Walk:
    """The Overview's walk through the model for one analysed image.

    Args:
        a: the cached analysis of the image on ``model``.
        model: the model that made ``a`` (only its [CLS] token and position embeddings are read).
        blocks: how many encoder blocks to show before the last (spread out, the first among them).
        budget: about how many numbers one token row may hold (sets how many dimensions are shown).
        side: pixels per patch side in the flattened-patch row.

    Returns:
        A Walk whose token rows equal the model's own tensors on the dimensions shown.
    """
    cfg = model.cfg
    prefix_n = a.num_prefix_tokens
    with torch.no_grad():
        # the analysis keeps the sum, cat(prefix, emb) + pos, but not its parts: read them off the model
        prefix = [t[0] for t in (model.cls_token, model.reg_token) if t is not None]  # each (1 or R, D)
        prefix_np = torch.cat(prefix).float().cpu().numpy() if prefix else np.zeros((0, cfg.embed_dim), np.float32)
        pos = model.resized_pos_embed(a.grid)[0].float().cpu().numpy()  # (T, D), or (N, D) if [CLS] gets none
    prefixed = np.concatenate([prefix_np, a.patch_embed])  # (T, D)
    T = prefixed.shape[0]
    if T != a.num_tokens:
        raise ValueError(f"The analysis has {a.num_tokens} tokens but the model makes {T}: another model's analysis?")
    pos = np.concatenate([np.zeros((T - len(pos), pos.shape[1]), np.float32), pos])  # (T, D)
    dims = shown_dims(cfg.embed_dim, T, budget)
    shown = shown_blocks(a.depth, blocks)

    # a model that reads the mean of its patch tokens: show the attention they receive on average
    reads_cls = prefix_n > 0 and cfg.global_pool == "token"

    def looks(att: np.ndarray) -> np.ndarray:
        return patch_map(a, att[0] if reads_cls else att[prefix_n:].mean(0))  # (gh, gw)

    has_head = a.probs.size > 0
    return Walk(
        image=a.image, grid=a.grid, patch_size=a.patch_size, in_chans=cfg.in_chans, embed_dim=cfg.embed_dim,
        num_prefix_tokens=prefix_n, reads_cls=reads_cls,
        pixels=patch_pixels(a.image, a.grid, a.patch_size, side),
        dims=dims,
        patch_embed=a.patch_embed[:, dims],
        prefixed=prefixed[:, dims],
        pos_embed=pos[:, dims],
        encoder_in=a.tokens[0][:, dims],
        blocks=shown,
        final=a.tokens[-1][:, dims],
        block_out=a.tokens[list(shown)][:, :, dims],  # (k, T, D')
        cls_attn=np.stack([looks(a.attn[b - 1].astype(np.float32).mean(0)) for b in shown]),  # (k, gh, gw), mean over heads
        lens=a.lens[[b - 1 for b in shown]] if has_head else np.zeros((len(shown), 0), np.float32),
        rollout=looks(a.rollout[-1]),
        probs=a.probs,
        depth=a.depth,
    )
