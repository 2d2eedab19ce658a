"""The baseline network of the paper's comparison: a small CNN of similar parameter count.

The ViT paper's headline (Sec. 4.2, Fig. 3 and 4) is that a ViT lacks a CNN's inductive biases
(locality, translation equivariance), so on small data a ResNet of similar size wins, and the ViT
overtakes it only with much more data. :func:`make_cnn` builds a ResNet-style network whose width
is chosen so its parameter count matches a given ViT's. It trains through the ViT's own loop
(``vit_core.training.loop.fit``): same data, schedule, optimiser rule and events, so the two curves
can be overlaid. (The paper's FLOP formula by hand is ``vit_core.analysis.lecture.layer_flops``.)

Also here: :func:`model_cost`, the parameter count and forward FLOPs per image of a model built
on the ``meta`` device (no memory, no compute), used by the training page before a run starts.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from vit_core.model import ViTConfig, VisionTransformer, count_params


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions and a shortcut (1x1 when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.short(x))


class SmallCNN(nn.Module):
    """Stem, three stages of widths (w, 2w, 4w) halving the resolution, global average pool, linear.

    The stem downsamples (stride 2 from 32 px, 4 from 96 px, as ResNet's stem does at 224 px), so
    the last stage sees a grid like the ViT's patch grid (6 x 6 at 48 px, 14 x 14 at 224 px) and
    the compute per image stays within a small factor of the ViT it is compared with.
    """

    def __init__(self, num_classes: int, width: int = 32, in_chans: int = 3, img_size: int = 32,
                 blocks: int = 1):
        super().__init__()
        self.width, self.img_size = width, img_size
        stride = 1 if img_size < 32 else (2 if img_size < 96 else 4)
        stem = [nn.Conv2d(in_chans, width, 3, min(stride, 2), 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        if stride == 4:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        layers, cin = [], width
        for i, w in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and b == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


def _params_of(width: int, num_classes: int, in_chans: int, img_size: int) -> int:
    with torch.device("meta"):
        return count_params(SmallCNN(num_classes, width, in_chans, img_size))


def make_cnn(target_params: int, num_classes: int, in_chans: int = 3, img_size: int = 32,
             seed: int = 0) -> SmallCNN:
    """The SmallCNN whose parameter count is closest to ``target_params`` (width 4 to 512)."""
    lo, hi = 4, 512
    while hi - lo > 1:  # the count grows with width: bisect for the last width under the target
        mid = (lo + hi) // 2
        if _params_of(mid, num_classes, in_chans, img_size) <= target_params:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda w: abs(_params_of(w, num_classes, in_chans, img_size) - target_params))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(num_classes, best, in_chans, img_size)


def matched_cnn(vit: ViTConfig, seed: int = 0) -> SmallCNN:
    """The SmallCNN matched in parameters to the ViT ``vit`` (same classes, channels and image size)."""
    with torch.device("meta"):
        target = count_params(VisionTransformer(vit))
    return make_cnn(target, vit.num_classes, vit.in_chans, vit.img_size, seed=seed)


# --- cost -----------------------------------------------------------------------------------------
def forward_flops(make: Callable[[], nn.Module], img_size: int, in_chans: int = 3) -> int:
    """FLOPs (multiply and add counted separately) of one forward pass on one image.

    ``make`` builds the model; it is called on the meta device, so nothing is allocated or computed.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = make().eval()
        x = torch.empty(1, in_chans, img_size, img_size)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return int(fc.get_total_flops())


def model_cost(cfg: ViTConfig) -> dict:
    """Parameters and forward GFLOPs per image of the ViT ``cfg`` and of its matched CNN."""
    with torch.device("meta"):
        vit_params = count_params(VisionTransformer(cfg))
    cnn = _cnn_meta(vit_params, cfg.num_classes, cfg.in_chans, cfg.img_size)
    return {
        "vit_params": vit_params,
        "vit_gflops": forward_flops(lambda: VisionTransformer(cfg), cfg.img_size, cfg.in_chans) / 1e9,
        "cnn_params": count_params(cnn),
        "cnn_width": cnn.width,
        "cnn_gflops": forward_flops(lambda: SmallCNN(cfg.num_classes, cnn.width, cfg.in_chans, cfg.img_size),
                                    cfg.img_size, cfg.in_chans) / 1e9,
        "tokens": cfg.num_patches + cfg.num_prefix_tokens,
    }


def _cnn_meta(target_params: int, num_classes: int, in_chans: int, img_size: int) -> SmallCNN:
    with torch.device("meta"):
        return make_cnn(target_params, num_classes, in_chans, img_size)


__all__ = ["SmallCNN", "forward_flops", "make_cnn", "matched_cnn", "model_cost"]
