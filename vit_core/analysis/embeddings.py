"""What the patch and position embeddings hold: the pieces of z_0 and position-similarity statistics.

Numbers for the Patch embedding and Position embeddings pages (numpy / torch, no Streamlit). The
similarity statistics take the tiles of ``maps.position_similarity``: (N, gh, gw), tile i
being the cosine similarity of position i to every position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from vit_core.analysis import maps
from vit_core.model import VisionTransformer

# --- patch embedding ---------------------------------------------------------------------------


def most_varied_patch(patches: np.ndarray) -> int:
    """The patch whose flattened values vary most (a default pick with some structure to see)."""
    return int(np.argmax(np.asarray(patches).std(axis=1)))


def _positions(model: VisionTransformer, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The position embeddings for a gh x gw grid, split into prefix rows and patch rows.

    Models with ``no_embed_class`` add no position to their prefix tokens: those rows are zero.

    Returns:
        (prefix, D) and (N, D) float32 arrays.
    """
    n = model.num_prefix_tokens
    with torch.no_grad():
        pos = model.resized_pos_embed(tuple(grid))[0].float().cpu().numpy()  # (T or N, D)
    if model.cfg.no_embed_class:
        return np.zeros((n, pos.shape[1]), np.float32), pos
    return pos[:n], pos[n:]


def embedding_parts(model: VisionTransformer, grid: tuple[int, int], patch_embed: np.ndarray,
                    tokens0: np.ndarray) -> dict:
    """How z_0 = [x_class; x_p E] + E_pos is put together for this input, with vector norms.

    Args:
        model: the ViT (its pos_embed and class token are read, nothing is changed).
        grid: (gh, gw) of this input.
        patch_embed: (N, D) x_p E + b from the trace.
        tokens0: (T, D) the encoder input z_0 from the trace.

    Returns:
        dict with the pieces' norms (per patch arrays and [CLS] scalars), shapes, and
        ``rebuild_diff``: max |[cls; x_p E] + E_pos - z_0| (None when the model applies a
        pre-norm, which z_0 then includes).
    """
    n_pre = model.num_prefix_tokens
    pos_prefix, pos_patch = _positions(model, grid)
    with torch.no_grad():
        prefix = [t[0].float().cpu().numpy() for t in (model.cls_token, model.reg_token) if t is not None]
    prefix_vecs = np.concatenate(prefix, 0) if prefix else np.zeros((0, patch_embed.shape[1]), np.float32)
    rebuilt = np.concatenate([prefix_vecs + pos_prefix, patch_embed + pos_patch], 0)  # (T, D)
    pre_norm = model.cfg.pre_norm
    diff = None if pre_norm or rebuilt.shape != tokens0.shape else float(np.abs(rebuilt - tokens0).max())
    return dict(
        N=patch_embed.shape[0], T=tokens0.shape[0], D=patch_embed.shape[1], prefix=n_pre,
        patch_norm=np.linalg.norm(patch_embed, axis=1),  # (N,)
        pos_norm=np.linalg.norm(pos_patch, axis=1),  # (N,)
        token_norm=np.linalg.norm(tokens0[n_pre:], axis=1),  # (N,)
        cls_norm=float(np.linalg.norm(prefix_vecs[0])) if n_pre else None,
        cls_pos_norm=float(np.linalg.norm(pos_prefix[0])) if n_pre and len(pos_prefix) else None,
        pos_shape=tuple(model.pos_embed.shape[1:]),
        rebuild_diff=diff, pre_norm=pre_norm,
    )


# --- position similarity -------------------------------------------------------------------------


def _pairs(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity tiles (N, gh, gw) as an (N, N) matrix, and each position's (row, column): (N, 2)."""
    N, gh, gw = sim.shape
    r, c = np.divmod(np.arange(gh * gw), gw)
    return sim.reshape(N, N), np.stack([r, c], 1)  # (N, gh, gw) -> (N, N); (N, 2)


# A neighbour-vs-far gap (``neighbour_vs_far``: near minus far) at least this large reads as "a
# clear 2-D map" of positions; the bundled model's acceptance threshold is the same figure.
GRID_GAP_CLEAR = 0.2


def neighbour_vs_far(sim: np.ndarray, far: int = 5) -> dict:
    """Mean cosine similarity of grid neighbours (up, down, left, right) vs positions far apart.

    Args:
        sim: (N, gh, gw) similarity tiles (row i = similarity of position i to all).
        far: "far" means at least this many cells apart in row or column (Chebyshev distance).

    Returns:
        dict near, far (NaN when the grid has no such pairs), n_near, n_far, far_cells.
    """
    S, cells = _pairs(sim)
    dr = np.abs(cells[:, None, 0] - cells[None, :, 0])
    dc = np.abs(cells[:, None, 1] - cells[None, :, 1])
    near = (dr + dc) == 1
    far_mask = np.maximum(dr, dc) >= far
    return dict(
        near=float(S[near].mean()) if near.any() else float("nan"),
        far=float(S[far_mask].mean()) if far_mask.any() else float("nan"),
        n_near=int(near.sum()) // 2, n_far=int(far_mask.sum()) // 2, far_cells=far,
    )


def row_column_similarity(sim: np.ndarray) -> dict:
    """Mean similarity to other positions in the same row, the same column, and everywhere else."""
    S, cells = _pairs(sim)
    same_r = cells[:, None, 0] == cells[None, :, 0]
    same_c = cells[:, None, 1] == cells[None, :, 1]
    off = ~np.eye(len(S), dtype=bool)

    def mean(mask):
        """Mean similarity over the pairs in a mask; NaN when there are none."""
        return float(S[mask].mean()) if mask.any() else float("nan")

    return dict(row=mean(same_r & off), col=mean(same_c & off), other=mean(~same_r & ~same_c))


def similarity_by_distance(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean cosine similarity of two positions against their distance on the grid (Euclidean, cells)."""
    S, cells = _pairs(sim)
    d2 = ((cells[:, None] - cells[None]) ** 2).sum(-1)  # (N, N) squared distances, integers
    off = ~np.eye(len(S), dtype=bool)
    keys = np.unique(d2[off])
    means = np.array([S[(d2 == k) & off].mean() for k in keys], np.float32)
    return np.sqrt(keys.astype(np.float32)), means


@dataclass(frozen=True)
class DistanceProfile:
    """Mean position similarity against grid distance, with what each dot rests on.

    A square grid has many pairs at middle distances but few far apart (2 corner-to-corner pairs
    at the very end), and only positions near the border can be far apart at all: the right end
    of the curve says how the border positions resemble each other, not how distance works.
    """

    dist: np.ndarray  # (K,) the distinct distances, in grid cells (Euclidean)
    means: np.ndarray  # (K,) mean cosine similarity of the pairs that far apart
    counts: np.ndarray  # (K,) how many (unordered) pairs of positions each mean averages
    border_from: float | None  # from this distance on, every pair has both positions near the border
    edge: int  # "near the border": at most this many cells from it
    corr_distance: float  # correlation over all pairs: similarity vs distance
    corr_centre: float  # similarity vs the difference of the two positions' distances from the centre
    climb: float  # how far the far end (pairs all near the border) rises above the curve's minimum


def distance_profile(sim: np.ndarray, edge: int = 2) -> DistanceProfile:
    """``similarity_by_distance`` with the number of pairs per distance and the border effect.

    Args:
        sim: (N, gh, gw) similarity tiles.
        edge: a position within this many cells of the border counts as "near the border".
    """
    S, cells = _pairs(sim)
    N, gh, gw = sim.shape
    d2 = ((cells[:, None] - cells[None]) ** 2).sum(-1)  # (N, N) squared distances, integers
    upper = np.triu(np.ones((N, N), dtype=bool), 1)  # each unordered pair once
    keys = np.unique(d2[upper])
    means = np.array([S[(d2 == k) & upper].mean() for k in keys], np.float32)
    counts = np.array([int(((d2 == k) & upper).sum()) for k in keys])
    dist = np.sqrt(keys.astype(np.float32))
    ring = np.minimum(np.minimum(cells[:, 0], gh - 1 - cells[:, 0]), np.minimum(cells[:, 1], gw - 1 - cells[:, 1]))
    near = ring <= edge
    inner_pair = ~(near[:, None] & near[None])  # at least one position away from the border
    inner_d = np.sqrt(d2[upper & inner_pair]) if (upper & inner_pair).any() else np.array([])
    border_from = None
    if len(inner_d) and inner_d.max() < dist[-1]:
        border_from = float(dist[dist > inner_d.max()][0])
    centre = np.sqrt((cells[:, 0] - (gh - 1) / 2) ** 2 + (cells[:, 1] - (gw - 1) / 2) ** 2)
    s, dd = S[upper], np.sqrt(d2[upper])
    dc = np.abs(centre[:, None] - centre[None])[upper]

    def corr(x: np.ndarray) -> float:
        return float(np.corrcoef(s, x)[0, 1]) if s.std() > 0 and x.std() > 0 else float("nan")

    far = dist >= border_from if border_from is not None else np.zeros(len(dist), bool)
    climb = float(np.average(means[far], weights=counts[far]) - means.min()) if far.any() else 0.0
    return DistanceProfile(dist=dist, means=means, counts=counts, border_from=border_from, edge=edge,
                           corr_distance=corr(dd), corr_centre=corr(dc), climb=climb)


def resized_similarity(model: VisionTransformer, grid: tuple[int, int]) -> np.ndarray:
    """Position similarity after resampling the embeddings to a new grid (timm's bicubic
    resampling, as for a larger or smaller input): (N', gh', gw')."""
    pos = _positions(model, grid)[1]  # (N', D)
    return maps.position_similarity(torch.from_numpy(pos), tuple(grid)).numpy()


def map_patch(index: int, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> int:
    """The patch of a new grid whose centre lies closest to the centre of `index` in the old grid."""
    gh, gw = old_grid
    nh, nw = new_grid
    r, c = divmod(int(index), gw)

    def nearest(k: int, old: int, new: int) -> int:
        """The new cell (row or column) whose span holds the centre of old cell k."""
        x = (k + 0.5) * new / old  # the old centre in new-cell units; new cell j spans (j, j + 1]
        return min(new - 1, max(0, math.ceil(x - 1.0)))  # a centre on a border goes to the lower cell

    return nearest(r, gh, nh) * nw + nearest(c, gw, nw)


def input_size_options(img_size: int, patch: int, lo_frac: float = 0.5, hi_frac: float = 2.0) -> list[int]:
    """Input sizes (multiples of P) from about half to twice the training size, at least 2 patches."""
    sizes = sorted({patch * g for g in range(2, 10_000)
                    if lo_frac * img_size <= patch * g <= hi_frac * img_size})
    if img_size not in sizes:
        sizes = sorted(set(sizes) | {img_size})
    # keep the list short enough for a slider: about 16 stops
    if len(sizes) > 17:
        step = math.ceil(len(sizes) / 16)
        keep = set(sizes[::step]) | {img_size, sizes[-1]}
        sizes = sorted(keep)
    return sizes
