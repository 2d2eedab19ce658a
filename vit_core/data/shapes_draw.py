"""Low-level drawing for the Shapes dataset: class templates, clutter stamps, backgrounds.

Private to ``vit_core.data.shapes``, which composes these pieces into scenes. Class
outlines are defined as membership tests in shape units, rasterised once into supersampled,
anti-aliased tiles (cached), and painted through batched, in-place tensor operations.
``CLASSES`` lives here because the templates are built in class order; ``shapes`` re-exports
it, and this module imports nothing from ``shapes`` so there is no import cycle.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

CLASSES = (
    "circle", "square", "triangle", "star", "cross",
    "ring", "arrow", "hexagon", "crescent", "heart",
)

_T = 256  # template resolution; ~1 template pixel per image pixel for the largest objects
EXTENT = 1.25  # templates cover [-EXTENT, EXTENT]^2 in shape units; every shape fits radius ~1.05
STAMP_PX = 15  # clutter stamp size (px); well below the 16-px patch and the smallest object


def _regular(n: int, radius: float, phase_deg: float) -> list[tuple[float, float]]:
    a = [math.radians(phase_deg) + 2 * math.pi * i / n for i in range(n)]
    return [(radius * math.cos(t), radius * math.sin(t)) for t in a]


def _in_polygon(x: torch.Tensor, y: torch.Tensor, verts) -> torch.Tensor:
    """Even-odd point-in-polygon test over a coordinate grid."""
    inside = torch.zeros_like(x, dtype=torch.bool)
    for (x1, y1), (x2, y2) in zip(verts, verts[1:] + verts[:1]):
        crosses = (y1 > y) != (y2 > y)
        x_hit = x1 + (y - y1) * (x2 - x1) / (y2 - y1 + 1e-12)
        inside ^= crosses & (x < x_hit)
    return inside


def _inside(name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Membership test in math coordinates (y up), shapes roughly within the unit disc."""
    r2 = x * x + y * y
    if name == "circle":
        return r2 <= 0.95**2
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if name == "crescent":
        return (r2 <= 1.0) & ((x - 0.45) ** 2 + (y - 0.2) ** 2 > 0.78**2)
    if name == "heart":  # classic implicit heart, rescaled so its box is centred
        hx, hy = x * 1.2, y * 1.2 + 0.118
        return (hx * hx + hy * hy - 1) ** 3 - hx * hx * hy**3 <= 0
    a, ln, w = 0.3, 0.95, 0.28
    polys = {
        "square": [(0.7, 0.7), (-0.7, 0.7), (-0.7, -0.7), (0.7, -0.7)],
        "triangle": _regular(3, 1.0, 90),
        "hexagon": _regular(6, 1.0, 0),
        "star": [(r * math.cos(t), r * math.sin(t)) for i in range(10)
                 for r, t in [((1.0, 0.45)[i % 2], math.pi / 2 + i * math.pi / 5)]],
        "cross": [(a, ln), (a, a), (ln, a), (ln, -a), (a, -a), (a, -ln),
                  (-a, -ln), (-a, -a), (-ln, -a), (-ln, a), (-a, a), (-a, ln)],
        "arrow": [(-w, -1.0), (w, -1.0), (w, 0.05), (0.7, 0.05), (0.0, 1.0),
                  (-0.7, 0.05), (-w, 0.05)],
    }
    return _in_polygon(x, y, polys[name])


def _supersampled_grid(pixels: int, half_extent: float, ss: int = 4):
    """Sub-pixel sample coordinates whose ``ss``x``ss`` means give anti-aliased pixels."""
    step = 2 * half_extent / (pixels - 1)  # align_corners=True spacing
    offs = (torch.arange(ss, dtype=torch.float64) + 0.5) / ss - 0.5
    c = (-half_extent + (torch.arange(pixels, dtype=torch.float64)[:, None] + offs) * step).flatten()
    return torch.meshgrid(c, c, indexing="xy")


@functools.lru_cache(maxsize=1)
def class_templates():
    """Returns (tiles (C,1,1,T,T), area per class in shape units^2, extent per class)."""
    x, y = _supersampled_grid(_T, EXTENT)
    tiles, areas, extents = [], [], []
    r = torch.hypot(x[::4, ::4], y[::4, ::4]).float()
    for name in CLASSES:
        inside = _inside(name, x, -y).double()  # template rows run downwards
        alpha = F.avg_pool2d(inside[None, None], 4)[0].float()
        tiles.append(alpha[None])
        areas.append(alpha.mean().item() * (2 * EXTENT) ** 2)
        extents.append(r[alpha[0] > 0.01].max().item())
    return torch.stack(tiles), torch.tensor(areas), torch.tensor(extents)


@functools.lru_cache(maxsize=1)
def _stamps() -> torch.Tensor:
    """Bank of small anti-aliased clutter alphas: dots, blobs and short line segments."""
    half = (STAMP_PX - 1) / 2
    x, y = _supersampled_grid(STAMP_PX, half)
    shapes = [x * x + y * y <= r * r for r in (1.3, 2.0, 2.8, 3.6, 4.5)]
    shapes += [(x / 4.5) ** 2 + (y / 2.2) ** 2 <= 1, (x / 2.2) ** 2 + (y / 4.5) ** 2 <= 1]
    for k in range(8):  # segments at 8 orientations, two lengths
        c, s = math.cos(k * math.pi / 8), math.sin(k * math.pi / 8)
        along, across = x * c + y * s, (-x * s + y * c).abs()
        shapes += [(along.abs() <= ln) & (across <= 0.9) for ln in (4.0, 6.5)]
    bank = torch.stack([s.double() for s in shapes])[:, None]
    return F.avg_pool2d(bank, 4)[:, 0].float()


def outer_add(row: torch.Tensor, col: torch.Tensor, out: torch.Tensor | None = None):
    """out[b, i, j] = row[b, j] + col[b, i]: a plane in one pass instead of a matmul."""
    return torch.add(row[:, None, :], col[:, :, None], out=out)


def draw_background(b: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Per-image blend weights in [0, 1], shape (b, 1, size, size), of four texture kinds."""
    kind = torch.randint(0, 4, (b,), generator=g)
    angle = torch.rand(b, generator=g) * 2 * math.pi
    period = 10 + 30 * torch.rand(b, generator=g)  # px; from fine to broad stripes
    phase = torch.rand(2, b, generator=g) * 2 * math.pi
    sharp = 1 + 4 * torch.rand(b, generator=g)
    noise = torch.rand(b, 1, 5, 5, generator=g)
    lin = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) / (size / 2)
    t = torch.empty(b, 1, size, size)
    for k in range(4):
        idx = (kind == k).nonzero().flatten()
        if idx.numel() == 0:
            continue
        cos, sin = angle[idx].cos()[:, None], angle[idx].sin()[:, None]
        if k == 0:  # linear gradient; the 1/(2*sqrt 2) keeps it inside [0, 1] unclamped
            tk = outer_add(0.5 + lin * cos / 2.83, lin * sin / 2.83)
        elif k == 1:  # smooth value noise; bicubic only to 1/4 size, as it is costly
            tk = F.interpolate(noise[idx], size=(size // 4,) * 2, mode="bicubic", align_corners=True)
            tk = F.interpolate(tk.clamp_(0, 1), size=(size, size), mode="bilinear")[:, 0]
        else:
            w = (math.pi * size / period[idx])[:, None]
            tk = outer_add(w * lin * cos + phase[0, idx, None], w * lin * sin).sin_()
            if k == 3:  # checker: product of two orthogonal waves
                tk *= outer_add(-w * lin * sin + phase[1, idx, None], w * lin * cos).sin_()
            tk = tk.mul_(sharp[idx, None, None] / 2).clamp_(-0.5, 0.5).add_(0.5)
        t[idx] = tk[:, None]
    return t


def paste_clutter(img: torch.Tensor, clutter: tuple[int, int], g: torch.Generator) -> None:
    """Alpha-composites clutter[0]..clutter[1] stamps per image into ``img`` (b, 3, S, S) in place."""
    b, _, size, _ = img.shape
    bank = _stamps()
    k_max = clutter[1]
    count = torch.randint(clutter[0], k_max + 1, (b,), generator=g)
    which = torch.randint(0, len(bank), (k_max, b), generator=g)
    pos = torch.randint(0, size - STAMP_PX + 1, (k_max, b, 2), generator=g)
    colour = torch.rand(k_max, b, 3, 1, 1, generator=g) * 255 + 0.5
    alpha = bank[which] * (torch.arange(k_max)[:, None] < count).float()[..., None, None]
    ar = torch.arange(STAMP_PX)
    # Flat offsets of one stamp's (3, STAMP, STAMP) pixels, plus each stamp's origin.
    pattern = (torch.arange(3)[:, None, None] * size + ar[:, None]) * size + ar
    origin = (torch.arange(b) * 3 * size + pos[..., 0]) * size + pos[..., 1]  # (k_max, b)
    flat = img.view(-1)
    # One slot at a time: within a slot each image owns its own pixels, so the
    # gather/blend/scatter never collides and later stamps correctly cover earlier ones.
    for k in range(k_max):
        idx = (origin[k, :, None, None, None] + pattern).view(-1)
        patch = flat.index_select(0, idx).view(b, 3, STAMP_PX, STAMP_PX)
        flat.index_copy_(0, idx, torch.lerp(patch, colour[k], alpha[k][:, None]).view(-1))
