"""vit_core.io.transforms against timm's create_transform: the same tensors, bit for bit."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vit_core.analysis import patches

from vit_core.io import transforms

timm_data = pytest.importorskip("timm.data")

CONFIGS = [
    dict(input_size=(3, 224, 224), interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0,
         crop_mode="center"),
    dict(input_size=(3, 224, 224), interpolation="bicubic", mean=(0.485, 0.456, 0.406),
         std=(0.229, 0.224, 0.225), crop_pct=0.9, crop_mode="center"),
    dict(input_size=(3, 224, 224), interpolation="bilinear", mean=(0.485, 0.456, 0.406),
         std=(0.229, 0.224, 0.225), crop_pct=0.875, crop_mode="center"),
    dict(input_size=(3, 64, 64), interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0,
         crop_mode="center"),
]
SIZES = [(224, 224), (320, 240), (240, 320), (97, 513), (1000, 31), (50, 50), (225, 224), (3, 2)]


def _image(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['input_size'][1]}-{c['interpolation']}-{c['crop_pct']}")
def test_same_tensor_as_timm(cfg):
    ours = transforms.eval_transform(cfg)
    theirs = timm_data.create_transform(**cfg, is_training=False)
    assert isinstance(ours, transforms.Compose)  # the fast path, not a fallback to timm
    for i, (w, h) in enumerate(SIZES):
        img = _image(w, h, i)
        a, b = ours(img), theirs(img)
        assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape == (3, *cfg["input_size"][1:])
        assert torch.equal(a, b), f"{w}x{h}: max diff {(a - b).abs().max()}"


def test_other_crop_modes_fall_back_to_timm():
    cfg = dict(CONFIGS[1], crop_mode="squash")
    t = transforms.eval_transform(cfg)
    assert not isinstance(t, transforms.Compose)
    assert torch.equal(t(_image(300, 200, 0)), timm_data.create_transform(**cfg, is_training=False)(_image(300, 200, 0)))


def test_plan_reads_both_pipelines_alike():
    cfg = CONFIGS[1]
    ours = patches.preprocess_plan(transforms.eval_transform(cfg), 320, 240, cfg)
    theirs = patches.preprocess_plan(timm_data.create_transform(**cfg, is_training=False), 320, 240, cfg)
    assert [(s.name, s.size) for s in ours.steps] == [(s.name, s.size) for s in theirs.steps]
    assert [s.name for s in ours.steps] == ["Original", "Resize", "Centre crop", "To tensor", "Normalise"]
    assert ours.crop_box == pytest.approx(theirs.crop_box) and ours.mean == pytest.approx(theirs.mean)


def test_bundled_model_loads_without_torchvision():
    """The start-up path (bundled model, one analysis) must not import torchvision or timm: that
    import alone costs ~1.7 s of the 5 s start-up budget."""
    code = ("import sys; from vit_core.io import loading, images; from vit_core.analysis import explain; from PIL import Image;"
            "lm = loading.load_model('bundled:shapes-vit');"
            "explain.analyze(lm.model, lm.transform, lm.data_config, Image.new('RGB', (300, 200)));"
            "print(sorted(m for m in ('timm', 'torchvision', 'torch._dynamo', 'sympy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
