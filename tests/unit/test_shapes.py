"""Tests for the procedural Shapes dataset."""

import pytest
import torch

from vit_core.data import shapes

N_CLS = len(shapes.CLASSES)


def test_shapes_and_dtypes():
    data = shapes.generate(12, seed=0)
    assert data.images.shape == (12, 3, 224, 224) and data.images.dtype == torch.uint8
    assert data.labels.shape == (12,) and data.labels.dtype == torch.int64
    assert data.masks.shape == (12, 224, 224) and data.masks.dtype == torch.bool
    assert data.classes == list(shapes.CLASSES) and N_CLS >= 10
    assert int(data.labels.min()) >= 0 and int(data.labels.max()) < N_CLS


def test_other_sizes():
    data = shapes.generate(4, seed=3, size=64)
    assert data.images.shape == (4, 3, 64, 64) and data.masks.shape == (4, 64, 64)


def test_same_seed_same_data_and_different_seed_differs():
    a, b, c = (shapes.generate(8, seed=s, size=96) for s in (5, 5, 6))
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    shapes.generate(4, seed=0, size=64)
    assert torch.equal(torch.rand(3), expected)


def test_masks_cover_a_plausible_area():
    data = shapes.generate(200, seed=1, size=112)
    frac = data.masks.float().mean(dim=(1, 2))
    assert frac.min() >= 0.04 and frac.max() <= 0.45, (frac.min(), frac.max())


def test_classes_roughly_uniform():
    counts = torch.bincount(shapes.generate(300, seed=2, size=32).labels, minlength=N_CLS)
    assert counts.min() >= 300 / N_CLS * 0.7 and counts.max() <= 300 / N_CLS * 1.3


def test_forced_labels_and_render_scene():
    data = shapes.generate(N_CLS, seed=4, size=64, labels=list(range(N_CLS)))
    assert data.labels.tolist() == list(range(N_CLS))
    image, label, mask = shapes.render_scene(7, class_index=3, size=64)
    assert image.shape == (3, 64, 64) and label == 3 and mask.any()


def test_object_differs_from_background():
    data = shapes.generate(64, seed=8, size=128)
    img = data.images.float()
    m = data.masks[:, None].float()
    inside = (img * m).sum((2, 3)) / m.sum((2, 3))
    outside = (img * (1 - m)).sum((2, 3)) / (1 - m).sum((2, 3))
    luma = torch.tensor([0.299, 0.587, 0.114])
    gap = ((inside - outside) @ luma).abs()
    assert gap.mean() > 40 and (gap > 15).float().mean() > 0.95


def test_class_not_inferable_from_mean_colour():
    """A nearest-class-mean classifier on mean RGB must stay near chance."""
    train = shapes.generate(1000, seed=10, size=48)
    test = shapes.generate(1000, seed=11, size=48)
    feats = [d.images.float().mean((2, 3)) for d in (train, test)]
    centroids = torch.stack([feats[0][train.labels == k].mean(0) for k in range(N_CLS)])
    pred = torch.cdist(feats[1], centroids).argmin(1)
    acc = (pred == test.labels).float().mean().item()
    assert acc < 2 / N_CLS, acc


def test_image_frame_stripes_carry_the_class_angle():
    """texture_frame="image": inside the object the luminance varies along the class's angle
    (pi * c / 10) whatever the shape's rotation; the default ("object") frame turns with the shape."""
    import math

    import numpy as np

    from vit_core.data.shapes import ShapesConfig, generate

    def angles(frame):
        cfg = ShapesConfig(fill_texture=1.0, texture_frame=frame, clutter=(0, 0), min_contrast=0.5, area=(0.3, 0.4))
        out = {}
        for c in (0, 3, 6):
            d = generate(24, seed=5, size=96, labels=[c] * 24, config=cfg)
            ests = []
            for img, m in zip(d.images, d.masks):
                y = img.float().mean(0).numpy()
                gy, gx = np.gradient(y)
                inner = m.numpy().copy()
                for ax in (0, 1):  # erode twice: the outline's own edge is not the texture
                    inner = inner & np.roll(inner, 2, ax) & np.roll(inner, -2, ax)
                jxx, jyy, jxy = (gx * gx)[inner].sum(), (gy * gy)[inner].sum(), (gx * gy)[inner].sum()
                ests.append(0.5 * math.atan2(2 * jxy, jxx - jyy))  # dominant gradient angle, mod pi
            doubled = np.exp(2j * np.array(ests))  # average angles mod pi
            out[c] = (float(np.angle(doubled.mean())) / 2 % math.pi, float(abs(doubled.mean())))
        return out

    image = angles("image")
    for c, (angle, spread) in image.items():
        want = math.pi * c / 10
        diff = min(abs(angle - want), math.pi - abs(angle - want))
        assert diff < math.radians(8) and spread > 0.8, (c, math.degrees(angle), spread)
    assert min(s for _, s in angles("object").values()) < 0.6  # rotations scatter the object-frame angle
    with pytest.raises(ValueError, match="texture_frame"):
        ShapesConfig(texture_frame="world")
