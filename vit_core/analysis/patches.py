"""From the uploaded picture to patch tokens: the model's preprocessing, patch sizes and token counts.

Plain arithmetic (numpy only, no Streamlit) for the Patches and Self-attention pages: what the
eval transform does to an image of a given size, which patch sizes tile it, and how many tokens
and attention scores a patch size means.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PrepStep:
    """One step of the model's preprocessing, with the image size (width, height) after it."""

    name: str
    text: str
    size: tuple[int, int]


@dataclass(frozen=True)
class PrepPlan:
    """The steps of the eval transform for one image, the crop box and the normalisation constants."""

    steps: list[PrepStep]
    crop_box: tuple[float, float, float, float] | None  # (left, top, right, bottom) in the ORIGINAL image
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _pair(size) -> tuple[int, int]:
    """torchvision size argument -> (h, w); an int means 'shorter side' for Resize."""
    if isinstance(size, int):
        return size, size
    size = list(size)
    return (int(size[0]), int(size[0])) if len(size) == 1 else (int(size[0]), int(size[1]))


def _resize_output(w: int, h: int, size, max_size=None) -> tuple[int, int]:
    """The (w, h) torchvision's Resize gives: an int resizes the shorter side, keeping the aspect."""
    if isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 1):
        s = size if isinstance(size, int) else int(size[0])
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = s, int(s * long / short)
        if max_size is not None and new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_short, new_long) if w <= h else (new_long, new_short)
    th, tw = _pair(size)
    return tw, th


def preprocess_plan(transform, width: int, height: int, data_config: dict) -> PrepPlan:
    """Walk the model's eval transform (a torchvision Compose) and say what each step does here.

    Sizes are followed through Resize / CenterCrop (torchvision and timm's variants) so the crop
    can be drawn on the original image; unknown steps are listed by name with their repr.
    """
    steps: list[PrepStep] = [PrepStep("Original", f"{width} x {height} pixels", (width, height))]
    w, h = float(width), float(height)
    # map from current coordinates back to the original: orig = offset + cur * scale
    sx, sy, ox, oy = 1.0, 1.0, 0.0, 0.0
    box_known = True
    mean = tuple(float(m) for m in data_config.get("mean", (0.5, 0.5, 0.5)))
    std = tuple(float(s) for s in data_config.get("std", (0.5, 0.5, 0.5)))
    parts = getattr(transform, "transforms", [transform])
    for t in parts:
        cls = type(t).__name__
        interp = getattr(t, "interpolation", None)
        interp = getattr(interp, "value", interp)
        if cls == "Resize":
            nw, nh = _resize_output(int(w), int(h), t.size, getattr(t, "max_size", None))
            kind = "shorter side to" if isinstance(t.size, int) or len(list(t.size)) == 1 else "exactly to"
            s = t.size if isinstance(t.size, int) else list(t.size)
            sx, sy = sx * w / nw, sy * h / nh
            w, h = float(nw), float(nh)
            steps.append(PrepStep("Resize", f"{kind} {s} ({interp}): {nw} x {nh}", (nw, nh)))
        elif cls == "ResizeKeepRatio":
            th, tw = _pair(t.size)
            ratio = max(h / th, w / tw) if getattr(t, "longest", 0.0) else min(h / th, w / tw)
            nw, nh = int(round(w / ratio)), int(round(h / ratio))
            sx, sy = sx * w / nw, sy * h / nh
            w, h = float(nw), float(nh)
            steps.append(PrepStep("Resize", f"keep aspect, fit {th} x {tw} ({interp}): {nw} x {nh}", (nw, nh)))
        elif cls in ("CenterCrop", "CenterCropOrPad"):
            ch, cw = _pair(t.size)
            left, top = int(round((w - cw) / 2.0)), int(round((h - ch) / 2.0))
            ox, oy = ox + left * sx, oy + top * sy
            pad = " (padded: the image is smaller)" if cw > w or ch > h else ""
            w, h = float(cw), float(ch)
            steps.append(PrepStep("Centre crop", f"{cw} x {ch} from the middle{pad}", (cw, ch)))
        elif cls in ("ToTensor", "MaybeToTensor", "PILToTensor", "ToImage", "ToDtype"):
            steps.append(PrepStep("To tensor", "pixel values 0..255 -> 0..1, shape C x H x W", (int(w), int(h))))
        elif cls in ("Normalize", "MaybeNormalize"):
            mean = tuple(float(m) for m in getattr(t, "mean", mean))
            std = tuple(float(s) for s in getattr(t, "std", std))
            steps.append(PrepStep("Normalise", "(x - mean) / std per colour channel", (int(w), int(h))))
        else:
            box_known = False
            steps.append(PrepStep(cls, repr(t)[:120], (int(w), int(h))))
    crop = (ox, oy, ox + w * sx, oy + h * sy) if box_known else None
    return PrepPlan(steps, crop, mean, std)


def keeps_everything(box, width: int, height: int, tol: float = 0.5) -> bool:
    """Whether a crop box (left, top, right, bottom) covers the whole width x height image."""
    l, t, r, b = box
    return l <= tol and t <= tol and r >= width - tol and b >= height - tol


def divisors_between(n: int, lo: int, hi: int) -> list[int]:
    """The divisors of n from lo to hi (both included), smallest first."""
    return [d for d in range(max(1, lo), min(n, hi) + 1) if n % d == 0]


def patch_size_options(height: int, width: int, lo: int = 2, hi: int | None = None) -> list[int]:
    """Patch sizes that tile an H x W image exactly (common divisors), from lo to hi (default min(H, W))."""
    hi = min(height, width) if hi is None else hi
    return divisors_between(math.gcd(height, width), lo, hi)


def token_counts(height: int, width: int, patch: int, prefix: int = 1) -> dict:
    """What a patch size P means for an H x W image: grid, N, T = N + prefix, T^2 attention scores."""
    if patch <= 0:
        raise ValueError("patch size must be positive")
    gh, gw = height // patch, width // patch
    N = gh * gw
    T = N + prefix
    return dict(patch=patch, gh=gh, gw=gw, N=N, T=T, T2=T * T, values=3 * patch * patch,
                leftover=(height - gh * patch, width - gw * patch))


def cost_curve(height: int, width: int, prefix: int, sizes: list[int]) -> dict[str, list[int]]:
    """Token count and attention cost for each patch size, for the cost chart."""
    rows = [token_counts(height, width, p, prefix) for p in sizes]
    return {k: [r[k] for r in rows] for k in ("patch", "N", "T", "T2")}


def patch_tiles(image: np.ndarray, patch: int) -> np.ndarray:
    """Cut an image (H, W, 3) into its patches in reading order: (N, P, P, 3)."""
    h, w = image.shape[:2]
    gh, gw = h // patch, w // patch
    img = image[: gh * patch, : gw * patch]  # leftover rows and columns are dropped, as the model does
    rows = img.reshape(gh, patch, gw, patch, -1)  # (gh, P, gw, P, C)
    return rows.transpose(0, 2, 1, 3, 4).reshape(gh * gw, patch, patch, -1)  # (gh, gw, P, P, C) -> (N, P, P, C)


@dataclass(frozen=True)
class TokenCost:
    """Attention size for a square image cut into patches, against every pixel value as a token."""

    patches: int  # N = (S/P)^2
    tokens: int  # T = N + prefix
    entries: int  # T^2 attention scores per head and layer
    pixel_tokens: int  # C*S*S: every pixel value a token
    pixel_entries: int  # (C*S*S)^2
    ratio: float  # pixel_entries / entries


def token_cost(image_size: int, patch_size: int, channels: int = 3, prefix: int = 1) -> TokenCost:
    """Attention size for patches vs. every pixel value as a token (ViT-B/16: 197^2 = 38,809)."""
    c = token_counts(image_size, image_size, patch_size, prefix)
    pix = channels * image_size * image_size
    return TokenCost(c["N"], c["T"], c["T2"], pix, pix * pix, pix * pix / c["T2"])




# --- the numbering convention, the same on every page ------------------------------------------
# Patches are numbered 0..N-1 row by row from the top left; rows and columns count from 0; in the
# token sequence the prefix tokens ([CLS] at 0, then any registers) come first, so patch p is token
# p + (number of prefix tokens): p + 1 for a ViT with one [CLS] token.


def patch_cell(p: int, gw: int) -> tuple[int, int]:
    """(row, column) of patch ``p`` on a grid ``gw`` patches wide, both counted from 0."""
    return divmod(int(p), int(gw))


def patch_label(p: int, gw: int, noun: str = "patch") -> str:
    """'patch 105 (row 7, column 7)': the one way every page names a patch (or a ``noun`` such as
    'position' for the same grid cell)."""
    r, c = patch_cell(p, gw)
    return f"{noun} {int(p)} (row {r}, column {c})"


def convention(gw: int, n_patches: int, prefix: int = 1) -> str:
    """The numbering convention in one sentence, with this grid's numbers as the example."""
    p = min(n_patches - 1, gw + 1)
    r, c = patch_cell(p, gw)
    token = (f"in the token sequence [CLS] is token 0{' (then the registers)' if prefix > 1 else ''} and "
             f"patch p is token p + {prefix}" if prefix else "this model has no [CLS] token, so patch p is token p")
    return (f"Patches are numbered 0 to {n_patches - 1} row by row from the top left; rows and columns count "
            f"from 0 too (patch {p} is row {r}, column {c}); {token}.")
