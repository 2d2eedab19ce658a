"""Procedural "Shapes" dataset: one object per image on a textured, cluttered background.

The bundled ViT is trained on this data so the app works offline. Each image holds a
single object from one of ten classes, placed at a random position, size, rotation and
colour over a random background (gradient, smooth noise, stripes or checker) with small
distractor clutter. Colours and backgrounds are drawn independently of the class, so the
class can only be read from the object's outline.

Rendering is vectorised: each class is rasterised once into an anti-aliased template,
objects are drawn by a batched ``grid_sample`` through per-image affine maps (one call
per class and chunk, restricted to a crop around the objects), and clutter is pasted
from a bank of small anti-aliased stamps. Those low-level pieces (templates, stamps,
backgrounds, clutter) live in ``_shapes_draw``; this module composes them into scenes.

Example:
    >>> data = generate(8, seed=0)
    >>> data.images.shape, data.labels.shape, data.masks.shape
    (torch.Size([8, 3, 224, 224]), torch.Size([8]), torch.Size([8, 224, 224]))
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

# CLASSES lives with the templates it orders and is re-exported here as public API.
from vit_core.data.shapes_draw import (
    EXTENT, STAMP_PX, CLASSES, draw_background, outer_add, paste_clutter, class_templates,
)

# Rotation range (± degrees). Shapes that would turn into another figure when rotated
# far (square -> diamond, plus -> X) stay near upright, and so do asymmetric shapes:
# earlier experiments learned upright shapes much faster than freely rotated ones.
MAX_ROTATION = {
    "circle": 180, "square": 20, "triangle": 25, "star": 180, "cross": 20,
    "ring": 180, "arrow": 30, "hexagon": 180, "crescent": 40, "heart": 25,
}

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


def _colours(luma: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random-hue colours of roughly the given luma, shape (..., 3), in 0.5..255.5.

    The +0.5 offset survives every later blend (lerps are affine), so the final
    float -> uint8 truncation rounds to nearest without an extra pass.
    """
    cb, cr = (torch.rand((2, *luma.shape), generator=g) - 0.5) * 0.5
    rgb = torch.stack([luma + 1.402 * cr, luma - 0.344 * cb - 0.714 * cr, luma + 1.772 * cb], -1)
    return rgb.clamp(0, 1) * 255 + 0.5


def _draw_objects(img, masks, labels, colour, centre, radius, reach, sx, sy, rot, cfg) -> None:
    """Draws each object through its affine map into ``img`` and writes its mask.

    Work is limited to a square crop around each object (shared per class so one
    ``grid_sample`` serves the group): objects cover a fraction of the image, and
    sampling and blending are the costliest per-pixel steps.
    """
    tiles = class_templates()[0]
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
        su, sv = (radius * sx * EXTENT)[idx, None], (radius * sy * EXTENT)[idx, None]
        grid = torch.empty(n, h, h, 2)
        outer_add(cos * dx / su, sin * dy / su, out=grid[..., 0])
        outer_add(-sin * dx / sv, cos * dy / sv, out=grid[..., 1])
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
    _, areas, extents = class_templates()

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
    t = draw_background(b, size, g).view(b, 1, -1)
    torch.baddbmm(bg[0].view(b, 3, 1), (bg[1] - bg[0]).view(b, 3, 1), t, out=img.view(b, 3, -1))
    paste_clutter(img, cfg.clutter, g)

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
    if size < 2 * STAMP_PX:
        raise ValueError(f"size must be at least {2 * STAMP_PX} px, got {size}")
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
