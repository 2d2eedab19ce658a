"""Procedural "Shapes" dataset: one object per image on a textured, cluttered background.

The bundled ViT is trained on this data so the app works offline. Each image holds a
single object from one of ten classes, placed at a random position, size, rotation and
colour over a random background (gradient, smooth noise, stripes or checker) with small
distractor clutter. Colours and backgrounds are drawn independently of the class, so the
class can only be read from the object's outline.

Rendering is vectorised: each class is rasterised once into an anti-aliased template,
and every object is drawn with a single batched ``grid_sample`` through a per-image
affine map; clutter is pasted from a bank of small stamps.

Example:
    >>> data = generate(8, seed=0)
    >>> data.images.shape, data.labels.shape, data.masks.shape
    (torch.Size([8, 3, 224, 224]), torch.Size([8]), torch.Size([8, 224, 224]))
"""

from __future__ import annotations

import dataclasses
import functools
import math

import torch
import torch.nn.functional as F

CLASSES = (
    "circle", "square", "triangle", "star", "cross",
    "ring", "arrow", "hexagon", "crescent", "heart",
)

# Rotation range (± degrees). Shapes that would turn into another class or into an
# ambiguous figure when rotated far (square -> diamond, plus -> X) stay near upright;
# asymmetric shapes stay near upright because that measurably speeds up learning.
MAX_ROTATION = {
    "circle": 180, "square": 20, "triangle": 25, "star": 180, "cross": 20,
    "ring": 180, "arrow": 30, "hexagon": 180, "crescent": 40, "heart": 25,
}

_T = 256  # template resolution; ~1 template pixel per image pixel for the largest objects
_EXT = 1.25  # templates cover [-_EXT, _EXT]^2 in shape units; every shape fits radius ~1.05
_STAMP = 15  # clutter stamp size (px); well below the 16-px patch and the smallest object
_CHUNK = 64  # images rendered per step; keeps per-step tensors cache-sized


@dataclasses.dataclass(frozen=True)
class ShapesConfig:
    """Knobs controlling difficulty. Defaults are what the bundled model is trained on.

    Attributes:
        area: Range of the object's area as a fraction of the image (log-uniform).
        aspect: Range of the per-object aspect-ratio stretch.
        clutter: Inclusive range of distractor stamps per image.
        min_contrast: Minimum luminance gap between object and both background colours.
        fill_texture: Amplitude of a weak class-specific stripe texture inside the object
            (0 disables it, so only the outline carries the class).
    """

    area: tuple[float, float] = (0.08, 0.32)
    aspect: tuple[float, float] = (0.85, 1.15)
    clutter: tuple[int, int] = (4, 14)
    min_contrast: float = 0.3
    fill_texture: float = 0.0


@dataclasses.dataclass(frozen=True)
class ShapesData:
    """A generated batch.

    Attributes:
        images: (n, 3, size, size) uint8 RGB.
        labels: (n,) int64 class indices into ``classes``.
        masks: (n, size, size) bool, True on the object's pixels.
        classes: Class names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    classes: list[str]


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
        hx, hy = x * 1.1, y * 1.1 + 0.118
        return (hx * hx + hy * hy - 1) ** 3 - hx * hx * hy**3 <= 0
    a, ln, w = 0.3, 0.95, 0.2
    polys = {
        "square": [(0.7, 0.7), (-0.7, 0.7), (-0.7, -0.7), (0.7, -0.7)],
        "triangle": [(vx * 1.1, vy * 1.1 - 0.25) for vx, vy in _regular(3, 1.0, 90)],
        "hexagon": _regular(6, 1.0, 0),
        "star": [(r * math.cos(t), r * math.sin(t)) for i in range(10)
                 for r, t in [((1.0, 0.45)[i % 2], math.pi / 2 + i * math.pi / 5)]],
        "cross": [(a, ln), (a, a), (ln, a), (ln, -a), (a, -a), (a, -ln),
                  (-a, -ln), (-a, -a), (-ln, -a), (-ln, a), (-a, a), (-a, ln)],
        "arrow": [(-w, -1.0), (w, -1.0), (w, 0.05), (0.62, 0.05), (0.0, 1.0),
                  (-0.62, 0.05), (-w, 0.05)],
    }
    return _in_polygon(x, y, polys[name])


def _supersampled_grid(pixels: int, half_extent: float, ss: int = 4):
    """Sub-pixel sample coordinates whose ``ss``x``ss`` means give anti-aliased pixels."""
    step = 2 * half_extent / (pixels - 1)  # align_corners=True spacing
    offs = (torch.arange(ss, dtype=torch.float64) + 0.5) / ss - 0.5
    c = (-half_extent + (torch.arange(pixels, dtype=torch.float64)[:, None] + offs) * step).flatten()
    return torch.meshgrid(c, c, indexing="xy")


@functools.lru_cache(maxsize=1)
def _templates():
    """Returns (atlas (1,1,T,C*T), area per class in shape units^2, extent per class)."""
    x, y = _supersampled_grid(_T, _EXT)
    tiles, areas, extents = [], [], []
    for name in CLASSES:
        inside = _inside(name, x, -y).double()  # template rows run downwards
        alpha = F.avg_pool2d(inside[None, None], 4)[0, 0].float()
        tiles.append(alpha)
        areas.append(alpha.mean().item() * (2 * _EXT) ** 2)
        r = torch.hypot(x[::4, ::4], y[::4, ::4]).float()
        extents.append(r[alpha > 0.01].max().item())
    return torch.cat(tiles, dim=1)[None, None], torch.tensor(areas), torch.tensor(extents)


@functools.lru_cache(maxsize=1)
def _stamps() -> torch.Tensor:
    """Bank of small anti-aliased clutter alphas: dots, blobs and short line segments."""
    half = (_STAMP - 1) / 2
    x, y = _supersampled_grid(_STAMP, half)
    shapes = [x * x + y * y <= r * r for r in (1.3, 2.0, 2.8, 3.6, 4.5)]
    shapes += [(x / 4.5) ** 2 + (y / 2.2) ** 2 <= 1, (x / 2.2) ** 2 + (y / 4.5) ** 2 <= 1]
    for k in range(8):  # segments at 8 orientations, two lengths
        c, s = math.cos(k * math.pi / 8), math.sin(k * math.pi / 8)
        along, across = x * c + y * s, (-x * s + y * c).abs()
        shapes += [(along.abs() <= ln) & (across <= 0.9) for ln in (4.0, 6.5)]
    bank = torch.stack([s.double() for s in shapes])[:, None]
    return F.avg_pool2d(bank, 4)[:, 0].float()


def _colours(luma: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random-hue RGB colours with (approximately) the given luma, shape (..., 3)."""
    cb, cr = (torch.rand((2, *luma.shape), generator=g) - 0.5) * 0.5
    rgb = torch.stack([luma + 1.402 * cr, luma - 0.344 * cb - 0.714 * cr, luma + 1.772 * cb], -1)
    return rgb.clamp(0, 1)


def _background(b: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Per-image blend weights in [0, 1], shape (b, 1, size, size), of four texture kinds."""
    kind = torch.randint(0, 4, (b,), generator=g)
    angle = torch.rand(b, generator=g) * 2 * math.pi
    period = 10 + 30 * torch.rand(b, generator=g)  # px; stripes from fine to broad
    phase = torch.rand(2, b, generator=g) * 2 * math.pi
    sharp = 1 + 4 * torch.rand(b, generator=g)
    noise = torch.rand(b, 1, 5, 5, generator=g)
    lin = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) / (size / 2)
    xs, ys = lin.view(1, 1, 1, -1), lin.view(1, 1, -1, 1)
    t = torch.empty(b, 1, size, size)
    for k in range(4):
        idx = (kind == k).nonzero().flatten()
        if idx.numel() == 0:
            continue
        v = lambda p: p[idx].view(-1, 1, 1, 1)  # noqa: E731 - per-image scalar view
        cos, sin = v(angle.cos()), v(angle.sin())
        if k == 0:  # linear gradient across the image
            tk = (0.5 + 0.5 * (xs * cos + ys * sin)).clamp_(0, 1)
        elif k == 1:  # smooth value noise
            tk = F.interpolate(noise[idx], size=(size, size), mode="bicubic", align_corners=True)
            tk = tk.clamp_(0, 1)
        else:
            w = v(math.pi * size / period)
            u = torch.sin(w * (xs * cos + ys * sin) + v(phase[0]))
            if k == 3:  # checker: product of two orthogonal waves
                u = u * torch.sin(w * (ys * cos - xs * sin) + v(phase[1]))
            tk = (u * v(sharp)).clamp_(-1, 1).mul_(0.5).add_(0.5)
        t[idx] = tk
    return t


def _paste_clutter(img: torch.Tensor, cfg: ShapesConfig, g: torch.Generator) -> None:
    """Alpha-composites small stamps into ``img`` in place, one stamp slot at a time."""
    b, _, size, _ = img.shape
    bank = _stamps()
    k_max = cfg.clutter[1]
    count = torch.randint(cfg.clutter[0], k_max + 1, (b,), generator=g)
    which = torch.randint(0, len(bank), (k_max, b), generator=g)
    pos = torch.randint(0, size - _STAMP + 1, (k_max, b, 2), generator=g)
    colour = torch.rand(k_max, b, 3, generator=g)
    ar = torch.arange(_STAMP)
    bi = torch.arange(b).view(b, 1, 1, 1)
    ci = torch.arange(3).view(1, 3, 1, 1)
    for k in range(k_max):
        # Slots past an image's count get zero alpha; within one slot every image owns
        # its own pixels, so gather/blend/scatter never overlaps and stays deterministic.
        alpha = bank[which[k]] * (k < count).float().view(b, 1, 1)
        ys = (pos[k, :, 0].view(b, 1, 1, 1) + ar.view(1, 1, -1, 1))
        xs = (pos[k, :, 1].view(b, 1, 1, 1) + ar.view(1, 1, 1, -1))
        patch = img[bi, ci, ys, xs]
        img[bi, ci, ys, xs] = torch.lerp(patch, colour[k].view(b, 3, 1, 1), alpha[:, None])


def _render_chunk(labels: torch.Tensor, size: int, cfg: ShapesConfig, g: torch.Generator):
    b = labels.numel()
    atlas, areas, extents = _templates()
    n_cls = len(CLASSES)

    # Colours: object and background sit on opposite sides of a luminance gap so the
    # object is always visible; polarity and hue are independent of the class.
    light = torch.rand(b, generator=g) < 0.5
    lo, hi = 0.05, 0.95
    obj_y = torch.where(light, 0.65 + 0.3 * torch.rand(b, generator=g),
                        lo + 0.3 * torch.rand(b, generator=g))
    gap = cfg.min_contrast
    bg_lo = torch.where(light, torch.full_like(obj_y, lo), obj_y + gap)
    bg_hi = torch.where(light, obj_y - gap, torch.full_like(obj_y, hi))
    bg_y = bg_lo + (bg_hi - bg_lo).clamp(min=0) * torch.rand(2, b, generator=g)
    bg = _colours(bg_y, g)  # (2, b, 3)
    obj = _colours(obj_y, g)

    t = _background(b, size, g)
    img = torch.lerp(bg[0].view(b, 3, 1, 1), bg[1].view(b, 3, 1, 1), t)
    _paste_clutter(img, cfg, g)

    # Object geometry: area (log-uniform) sets the radius in pixels via the template's
    # own area, so every class covers the same range of pixels and size is no cue.
    la, lb = math.log(cfg.area[0]), math.log(cfg.area[1])
    area = torch.exp(la + (lb - la) * torch.rand(b, generator=g))
    aspect = cfg.aspect[0] + (cfg.aspect[1] - cfg.aspect[0]) * torch.rand(b, generator=g)
    sx, sy = aspect.sqrt(), 1 / aspect.sqrt()
    radius = (area * size * size / areas[labels]).sqrt()
    reach = extents[labels] * torch.maximum(sx, sy)
    radius = torch.minimum(radius, (0.48 * size - 2) / reach)
    margin = radius * reach + 2
    centre = margin[:, None] + (size - 2 * margin[:, None]) * torch.rand(b, 2, generator=g)
    max_rot = torch.tensor([float(MAX_ROTATION[c]) for c in CLASSES])[labels]
    rot = torch.deg2rad((2 * torch.rand(b, generator=g) - 1) * max_rot)
    light_dir = torch.rand(b, generator=g) * 2 * math.pi

    # Map output pixels (affine_grid's normalised coords) into the shape frame.
    cos, sin = rot.cos(), rot.sin()
    off = size / 2 - 0.5 - centre  # (b, 2): pixel offset of the image centre
    half = size / 2
    theta = torch.stack([
        torch.stack([cos * half, sin * half, cos * off[:, 0] + sin * off[:, 1]], -1) / (radius * sx)[:, None],
        torch.stack([-sin * half, cos * half, -sin * off[:, 0] + cos * off[:, 1]], -1) / (radius * sy)[:, None],
    ], 1)
    grid = F.affine_grid(theta, [b, 1, size, size], align_corners=False)
    # Clamp into the template's empty border so no lookup leaks into a neighbouring tile.
    grid.clamp_(-_EXT, _EXT)
    u, v = grid[..., 0].unsqueeze(1), grid[..., 1].unsqueeze(1)
    scale = torch.tensor([(_T - 1) / (_EXT * (n_cls * _T - 1)), 1 / _EXT])
    shift = torch.stack([(labels * _T + (_T - 1) / 2) * 2 / (n_cls * _T - 1) - 1,
                         torch.zeros(b)], -1)
    grid = grid.mul_(scale).add_(shift.view(b, 1, 1, 2))
    alpha = F.grid_sample(atlas.expand(b, -1, -1, -1), grid, align_corners=True)

    # Soft directional shading makes objects look solid without hinting at the class.
    shade = 1 + 0.12 * (u * light_dir.cos().view(b, 1, 1, 1) + v * light_dir.sin().view(b, 1, 1, 1))
    if cfg.fill_texture > 0:  # optional weak class-specific stripes in the shape frame
        freq = (4 + labels.float() * 0.9).view(b, 1, 1, 1)
        ang = (labels.float() * 0.63).view(b, 1, 1, 1)
        shade = shade + cfg.fill_texture * torch.sin(freq * (u * ang.cos() + v * ang.sin()))
    fill = (obj.view(b, 3, 1, 1) * shade).clamp_(0, 1)
    img.lerp_(fill, alpha)
    images = img.mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return images, alpha[:, 0] > 0.5


def generate(n: int, seed: int, size: int = 224, labels=None,
             config: ShapesConfig | None = None) -> ShapesData:
    """Generates ``n`` labelled scenes deterministically from ``seed``.

    Args:
        n: Number of images.
        seed: Seed for a local ``torch.Generator``; global RNG state is untouched.
        size: Image side in pixels.
        labels: Optional class indices to render (length ``n``). By default the labels
            are a shuffled, balanced cycle through all classes.
        config: Difficulty knobs; defaults to ``ShapesConfig()``.

    Returns:
        A ``ShapesData`` with images, labels, masks and class names.
    """
    cfg = config or ShapesConfig()
    g = torch.Generator().manual_seed(int(seed))
    if labels is None:
        labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=g)]
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if labels.numel() != n:
        raise ValueError(f"expected {n} labels, got {labels.numel()}")
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    masks = torch.empty(n, size, size, dtype=torch.bool)
    for start in range(0, n, _CHUNK):
        sl = slice(start, start + _CHUNK)
        images[sl], masks[sl] = _render_chunk(labels[sl], size, cfg, g)
    return ShapesData(images, labels, masks, list(CLASSES))


def render_scene(seed: int, class_index: int | None = None, size: int = 224):
    """Renders one scene, e.g. for the app's sample gallery.

    Args:
        seed: Random seed.
        class_index: Class to draw; random (from the seed) if None.
        size: Image side in pixels.

    Returns:
        Tuple ``(image (3, size, size) uint8, label, mask (size, size) bool)``.
    """
    if class_index is None:
        class_index = int(torch.randint(len(CLASSES), (1,), generator=torch.Generator().manual_seed(int(seed))))
    data = generate(1, seed, size, labels=[class_index])
    return data.images[0], int(data.labels[0]), data.masks[0]
