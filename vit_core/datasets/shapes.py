"""Procedural "Shapes" dataset: one object per image on a textured, cluttered background.

The bundled ViT is trained on this data so the app works offline. Each image holds a
single object from one of ten classes, placed at a random position, size, rotation and
colour over a random background (gradient, smooth noise, stripes or checker) with small
distractor clutter. Colours and backgrounds are drawn independently of the class, so the
class can only be read from the object's outline.

Rendering is vectorised: each class is rasterised once into an anti-aliased template,
objects are drawn by a batched ``grid_sample`` through per-image affine maps (one call
per class and chunk, restricted to a crop around the objects), and clutter is pasted
from a bank of small anti-aliased stamps.

Example:
    >>> data = generate(8, seed=0)
    >>> data.images.shape, data.labels.shape, data.masks.shape
    (torch.Size([8, 3, 224, 224]), torch.Size([8]), torch.Size([8, 224, 224]))
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

CLASSES = (
    "circle", "square", "triangle", "star", "cross",
    "ring", "arrow", "hexagon", "crescent", "heart",
)

# Rotation range (± degrees). Shapes that would turn into another figure when rotated
# far (square -> diamond, plus -> X) stay near upright, and so do asymmetric shapes:
# earlier experiments learned upright shapes much faster than freely rotated ones.
MAX_ROTATION = {
    "circle": 180, "square": 20, "triangle": 25, "star": 180, "cross": 20,
    "ring": 180, "arrow": 30, "hexagon": 180, "crescent": 40, "heart": 25,
}

_T = 256  # template resolution; ~1 template pixel per image pixel for the largest objects
_EXT = 1.25  # templates cover [-_EXT, _EXT]^2 in shape units; every shape fits radius ~1.05
_STAMP = 15  # clutter stamp size (px); well below the 16-px patch and the smallest object
_CHUNK = 32  # images per step: small enough that big temporaries reuse heap memory


@dataclasses.dataclass(frozen=True)
class ShapesConfig:
    """Knobs controlling difficulty. Defaults are what the bundled model is trained on.

    Attributes:
        area: Range of the object's area as a fraction of the image (log-uniform). Above
            ~0.25 the elongated classes (arrow, star, triangle) no longer fit in the
            image and get clamped, which would make size a class cue.
        aspect: Range of the per-object aspect-ratio stretch.
        clutter: Inclusive range of distractor stamps per image.
        min_contrast: Minimum luminance gap between object and both background colours.
        fill_texture: Amplitude of a weak class-specific stripe texture inside the object
            (0 disables it, so only the outline carries the class).
        texture_frame: "object": the stripes turn with the shape and the class sets their
            angle in the shape's frame and their frequency (neighbouring classes differ by ~20%
            in frequency: a subtle cue). "image": the class sets the stripes' angle in the image
            (10 angles 18 degrees apart) at one period of size/8 px, an easy cue that still lives
            only on the object (used by the quick live-training preset).
    """

    area: tuple[float, float] = (0.08, 0.25)
    aspect: tuple[float, float] = (0.85, 1.15)
    clutter: tuple[int, int] = (4, 14)
    min_contrast: float = 0.3
    fill_texture: float = 0.0
    texture_frame: str = "object"

    def __post_init__(self):
        if self.texture_frame not in ("object", "image"):
            raise ValueError(f"texture_frame must be 'object' or 'image', not {self.texture_frame!r}")


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
def _templates():
    """Returns (tiles (C,1,1,T,T), area per class in shape units^2, extent per class)."""
    x, y = _supersampled_grid(_T, _EXT)
    tiles, areas, extents = [], [], []
    r = torch.hypot(x[::4, ::4], y[::4, ::4]).float()
    for name in CLASSES:
        inside = _inside(name, x, -y).double()  # template rows run downwards
        alpha = F.avg_pool2d(inside[None, None], 4)[0].float()
        tiles.append(alpha[None])
        areas.append(alpha.mean().item() * (2 * _EXT) ** 2)
        extents.append(r[alpha[0] > 0.01].max().item())
    return torch.stack(tiles), torch.tensor(areas), torch.tensor(extents)


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
    """Random-hue colours of roughly the given luma, shape (..., 3), in 0.5..255.5.

    The +0.5 offset survives every later blend (lerps are affine), so the final
    float -> uint8 truncation rounds to nearest without an extra pass.
    """
    cb, cr = (torch.rand((2, *luma.shape), generator=g) - 0.5) * 0.5
    rgb = torch.stack([luma + 1.402 * cr, luma - 0.344 * cb - 0.714 * cr, luma + 1.772 * cb], -1)
    return rgb.clamp(0, 1) * 255 + 0.5


def _outer_add(row: torch.Tensor, col: torch.Tensor, out: torch.Tensor | None = None):
    """out[b, i, j] = row[b, j] + col[b, i]: a plane in one pass instead of a matmul."""
    return torch.add(row[:, None, :], col[:, :, None], out=out)


def _background(b: int, size: int, g: torch.Generator) -> torch.Tensor:
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
            tk = _outer_add(0.5 + lin * cos / 2.83, lin * sin / 2.83)
        elif k == 1:  # smooth value noise; bicubic only to 1/4 size, as it is costly
            tk = F.interpolate(noise[idx], size=(size // 4,) * 2, mode="bicubic", align_corners=True)
            tk = F.interpolate(tk.clamp_(0, 1), size=(size, size), mode="bilinear")[:, 0]
        else:
            w = (math.pi * size / period[idx])[:, None]
            tk = _outer_add(w * lin * cos + phase[0, idx, None], w * lin * sin).sin_()
            if k == 3:  # checker: product of two orthogonal waves
                tk *= _outer_add(-w * lin * sin + phase[1, idx, None], w * lin * cos).sin_()
            tk = tk.mul_(sharp[idx, None, None] / 2).clamp_(-0.5, 0.5).add_(0.5)
        t[idx] = tk[:, None]
    return t


def _paste_clutter(img: torch.Tensor, cfg: ShapesConfig, g: torch.Generator) -> None:
    """Alpha-composites small stamps into ``img`` (b, 3, S, S) in place."""
    b, _, size, _ = img.shape
    bank = _stamps()
    k_max = cfg.clutter[1]
    count = torch.randint(cfg.clutter[0], k_max + 1, (b,), generator=g)
    which = torch.randint(0, len(bank), (k_max, b), generator=g)
    pos = torch.randint(0, size - _STAMP + 1, (k_max, b, 2), generator=g)
    colour = torch.rand(k_max, b, 3, 1, 1, generator=g) * 255 + 0.5
    alpha = bank[which] * (torch.arange(k_max)[:, None] < count).float()[..., None, None]
    ar = torch.arange(_STAMP)
    # Flat offsets of one stamp's (3, STAMP, STAMP) pixels, plus each stamp's origin.
    pattern = (torch.arange(3)[:, None, None] * size + ar[:, None]) * size + ar
    origin = (torch.arange(b) * 3 * size + pos[..., 0]) * size + pos[..., 1]  # (k_max, b)
    flat = img.view(-1)
    # One slot at a time: within a slot each image owns its own pixels, so the
    # gather/blend/scatter never collides and later stamps correctly cover earlier ones.
    for k in range(k_max):
        idx = (origin[k, :, None, None, None] + pattern).view(-1)
        patch = flat.index_select(0, idx).view(b, 3, _STAMP, _STAMP)
        flat.index_copy_(0, idx, torch.lerp(patch, colour[k], alpha[k][:, None]).view(-1))


def _draw_objects(img, masks, labels, colour, centre, radius, reach, sx, sy, rot, cfg) -> None:
    """Draws each object through its affine map into ``img`` and writes its mask.

    Work is limited to a square crop around each object (shared per class so one
    ``grid_sample`` serves the group): objects cover a fraction of the image, and
    sampling and blending are the costliest per-pixel steps.
    """
    tiles = _templates()[0]
    size = img.shape[-1]
    masks.zero_()
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        n = idx.numel()
        half = radius[idx] * reach[idx] + 2  # object lies within centre +- half
        h = min(size, int(2 * half.max().ceil().item()) + 2)
        origin = (centre[idx] - h / 2).round().clamp(0, size - h)  # (n, 2) as (x, y)
        pix = torch.arange(h, dtype=torch.float32)
        dx = pix + (origin[:, :1] - centre[idx, :1])  # (n, h) offsets from the centre
        dy = pix + (origin[:, 1:] - centre[idx, 1:])
        cos, sin = rot[idx, None].cos(), rot[idx, None].sin()
        su, sv = (radius * sx * _EXT)[idx, None], (radius * sy * _EXT)[idx, None]
        grid = torch.empty(n, h, h, 2)
        _outer_add(cos * dx / su, sin * dy / su, out=grid[..., 0])
        _outer_add(-sin * dx / sv, cos * dy / sv, out=grid[..., 1])
        alpha = F.grid_sample(tiles[c].expand(n, -1, -1, -1), grid, align_corners=True)
        fill = colour[idx]
        if cfg.fill_texture > 0 and cfg.texture_frame == "image":  # stripes at a class angle, fixed period
            a = math.pi * c / len(CLASSES)
            k = 2 * math.pi / max(3.0, size / 8)  # period size/8 px: well above the pixel grid at 32 px
            wave = (dx[:, None, :] * math.cos(a) + dy[:, :, None] * math.sin(a)) * k  # (n, h, h)
            fill = (fill * (1 + cfg.fill_texture * wave.sin_()[:, None])).clamp_(0.5, 255.5)
        elif cfg.fill_texture > 0:  # weak class-specific stripes in the shape's own frame
            a = 0.63 * c
            wave = (grid[..., 0] * math.cos(a) + grid[..., 1] * math.sin(a)) * (5 + 1.1 * c)
            fill = (fill * (1 + cfg.fill_texture * wave.sin_()[:, None])).clamp_(0.5, 255.5)
        for k, (i, (x0, y0)) in enumerate(zip(idx.tolist(), origin.int().tolist())):
            img[i, :, y0:y0 + h, x0:x0 + h].lerp_(fill[k], alpha[k])
            torch.gt(alpha[k, 0], 0.5, out=masks[i, y0:y0 + h, x0:x0 + h])


def _render_chunk(labels, size, cfg, g, images_out, masks_out, img) -> None:
    """Renders ``labels`` into uint8 image and bool mask slices, using float buffer ``img``."""
    b = labels.numel()
    _, areas, extents = _templates()

    # Colours: object and background sit on opposite sides of a luminance gap so the
    # object is always visible; polarity and hue are independent of the class.
    light = torch.rand(b, generator=g) < 0.5
    gap, lo, hi = cfg.min_contrast, 0.05, 0.95
    obj_y = torch.where(light, hi - 0.3 * torch.rand(b, generator=g),
                        lo + 0.3 * torch.rand(b, generator=g))
    bg_lo = torch.where(light, torch.full_like(obj_y, lo), obj_y + gap)
    bg_hi = torch.where(light, obj_y - gap, torch.full_like(obj_y, hi))
    bg_y = bg_lo + (bg_hi - bg_lo).clamp(min=0) * torch.rand(2, b, generator=g)
    bg = _colours(bg_y, g)[..., None, None]  # (2, b, 3, 1, 1)
    obj = _colours(obj_y, g)[..., None, None]

    # bg0 + (bg1 - bg0) * t as a batched rank-1 matmul into a reused buffer: several
    # times cheaper than a broadcasting lerp/addcmul into fresh memory.
    t = _background(b, size, g).view(b, 1, -1)
    torch.baddbmm(bg[0].view(b, 3, 1), (bg[1] - bg[0]).view(b, 3, 1), t, out=img.view(b, 3, -1))
    _paste_clutter(img, cfg, g)

    # Geometry: the sampled area fraction sets the radius through the template's own
    # area, so all classes cover the same range of pixels and size is no cue.
    la, lb = math.log(cfg.area[0]), math.log(cfg.area[1])
    area = torch.exp(la + (lb - la) * torch.rand(b, generator=g))
    aspect = cfg.aspect[0] + (cfg.aspect[1] - cfg.aspect[0]) * torch.rand(b, generator=g)
    sx, sy = aspect.sqrt(), 1 / aspect.sqrt()
    reach = extents[labels] * torch.maximum(sx, sy)
    radius = torch.minimum((area * size * size / areas[labels]).sqrt(), (0.48 * size - 2) / reach)
    margin = (radius * reach + 2)[:, None]
    centre = margin + (size - 1 - 2 * margin) * torch.rand(b, 2, generator=g)
    max_rot = torch.tensor([float(MAX_ROTATION[c]) for c in CLASSES])[labels]
    rot = torch.deg2rad((2 * torch.rand(b, generator=g) - 1) * max_rot)

    _draw_objects(img, masks_out, labels, obj, centre, radius, reach, sx, sy, rot, cfg)
    # Truncation rounds, thanks to the +0.5 in the colours; numpy's cast is much faster.
    images_out.copy_(torch.from_numpy(img.numpy().astype(np.uint8)))


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
    if size < 2 * _STAMP:
        raise ValueError(f"size must be at least {2 * _STAMP} px, got {size}")
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    buffer = torch.empty(min(n, _CHUNK), 3, size, size)
    masks = torch.empty(n, size, size, dtype=torch.bool)
    for start in range(0, n, _CHUNK):
        sl = slice(start, start + _CHUNK)
        chunk = labels[sl]
        _render_chunk(chunk, size, cfg, g, images[sl], masks[sl], buffer[: len(chunk)])
    return ShapesData(images, labels, masks, list(CLASSES))


def render_scene(seed: int, class_index: int | None = None, size: int = 224,
                 config: ShapesConfig | None = None):
    """Renders one scene, e.g. for the app's sample gallery.

    Args:
        seed: Random seed.
        class_index: Class to draw; random (from the seed) if None.
        size: Image side in pixels.
        config: Data options, e.g. those a model was trained with (its model.json
            ``meta.train_config.data_options``).

    Returns:
        Tuple ``(image (3, size, size) uint8, label, mask (size, size) bool)``.
    """
    if class_index is None:
        g = torch.Generator().manual_seed(int(seed))
        class_index = int(torch.randint(len(CLASSES), (1,), generator=g))
    data = generate(1, seed, size, labels=[class_index], config=config)
    return data.images[0], int(data.labels[0]), data.masks[0]
