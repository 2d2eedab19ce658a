"""A small CNN for the paper's comparison: same data, same budget, similar parameter count.

The ViT paper's headline (Sec. 4.2, Fig. 3 and 4) is that a ViT lacks a CNN's inductive biases
(locality, translation equivariance), so on small data a ResNet of similar size wins, and the ViT
overtakes it only with much more data. :func:`make_cnn` builds a ResNet-style network whose width
is chosen so its parameter count matches a given ViT's; :func:`train_cnn` trains any module with
the ViT trainer's data, schedule, augmentation and events, so the two curves can be overlaid.

Also here: :func:`model_cost`, the parameter count and forward FLOPs per image of a model built
on the ``meta`` device (no memory, no compute), used by the training page before a run starts.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator

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


def vit_flops_formula(cfg: ViTConfig) -> int:
    """The same count by hand, as in the paper's appendix: 2 x multiply-accumulates per image.

    Patch embedding N*(C*P*P)*D; per block 4*T*D^2 (q, k, v, output projection) + 2*T^2*D
    (scores and weighted sum) + 2*r*T*D^2 (the MLP); then the head D*K.
    """
    N, D, T = cfg.num_patches, cfg.embed_dim, cfg.num_patches + cfg.num_prefix_tokens
    hidden = int(D * cfg.mlp_ratio)
    macs = N * cfg.in_chans * cfg.patch_size**2 * D
    macs += cfg.depth * (4 * T * D * D + 2 * T * T * D + 2 * T * D * hidden)
    macs += D * cfg.num_classes
    return 2 * macs


def model_cost(cfg: ViTConfig) -> dict:
    """Parameters and forward GFLOPs per image of the ViT ``cfg`` and of its matched CNN."""
    with torch.device("meta"):
        vit_params = count_params(VisionTransformer(cfg))
    cnn = make_cnn_meta(vit_params, cfg.num_classes, cfg.in_chans, cfg.img_size)
    return {
        "vit_params": vit_params,
        "vit_gflops": forward_flops(lambda: VisionTransformer(cfg), cfg.img_size, cfg.in_chans) / 1e9,
        "cnn_params": count_params(cnn),
        "cnn_width": cnn.width,
        "cnn_gflops": forward_flops(lambda: SmallCNN(cfg.num_classes, cnn.width, cfg.in_chans, cfg.img_size),
                                    cfg.img_size, cfg.in_chans) / 1e9,
        "tokens": cfg.num_patches + cfg.num_prefix_tokens,
    }


def make_cnn_meta(target_params: int, num_classes: int, in_chans: int, img_size: int) -> SmallCNN:
    with torch.device("meta"):
        return make_cnn(target_params, num_classes, in_chans, img_size)


# --- training -------------------------------------------------------------------------------------
def train_module(model: nn.Module, cfg, stop_event: threading.Event | None = None, data=None,
                 compile_model: bool = False) -> Iterator:
    """Train any classifier with the ViT trainer's recipe; yields its Step, Eval and Done events.

    Same data source, AdamW (no decay on biases and norms), warm-up + cosine over the same
    budget, augmentation, label smoothing, gradient clipping and divergence check as
    ``vit_core.training.loop.train``, so that only the model differs. No Snapshot events: those are ViT-only.
    """
    from vit_core.data import source as D

    prev = torch.get_num_threads()
    torch.set_num_threads(cfg.num_threads or os.cpu_count() or 1)
    try:
        yield from _loop(model, cfg, stop_event, data or D.DATA_SOURCES[cfg.dataset](cfg), compile_model)
    finally:
        torch.set_num_threads(prev)


def train_cnn(cfg, stop_event: threading.Event | None = None, data=None, classes: int | None = None) -> Iterator:
    """Train the SmallCNN matched in parameters to ``cfg.vit`` on the same data and budget."""
    from vit_core.data import source as D

    data = data or D.DATA_SOURCES[cfg.dataset](cfg)
    k = classes or len(data.classes)
    with torch.device("meta"):
        target = count_params(VisionTransformer(ViTConfig(**{**cfg.vit.to_dict(), "num_classes": k})))
    model = make_cnn(target, k, cfg.vit.in_chans, cfg.img_size, seed=cfg.seed)
    yield from train_module(model, cfg, stop_event, data)


def _loop(model: nn.Module, cfg, stop_event, data, compile_model: bool = False) -> Iterator:
    from vit_core.data import source as D
    from vit_core.training import loop as T

    dev = T.pick_device(cfg.device)
    model = model.to(dev).train()
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile_model else model
    named = list(model.named_parameters())
    decay = [p for _, p in named if p.ndim >= 2]
    no_decay = [p for _, p in named if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    g = torch.Generator().manual_seed(D._step_seed(cfg.seed, -10**6))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext())
    explode = 10 * math.log(max(2, len(data.classes))) + 5
    t0, step, val_acc, last_eval, reason = time.perf_counter(), 0, float("nan"), -1, "finished"
    while True:
        elapsed = time.perf_counter() - t0
        ended = T.end_reason(cfg, step, elapsed, stop_event)
        if ended:
            reason = ended
            break
        lr = T.lr_at(cfg, step, elapsed)
        for pg in opt.param_groups:
            pg["lr"] = lr
        images, labels, *_ = data.train_batch(step)  # (Shapes also returns object masks: unused)
        x = D.normalize(images)
        if cfg.augment:
            x = D.augment(x, cfg.shift_px, g)
        x, y = x.to(dev), labels.to(dev)
        with autocast:
            out = forward(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=cfg.label_smoothing)
        lv = loss.item()
        diverged = T.divergence(lv, explode, step, lr)
        if diverged:
            reason = diverged
            break
        T.apply_update(model, opt, loss, cfg.grad_clip)
        step += 1
        yield T.step_event(cfg, data, step, t0, lv, out, y, lr)
        if cfg.eval_every and step % cfg.eval_every == 0:
            vl, val_acc = T.evaluate_model(model, data.val_images, data.val_labels)
            last_eval = step
            yield T.Eval(step, vl, val_acc)
    model.eval()
    if not reason.startswith("diverged") and last_eval != step:
        vl, val_acc = T.evaluate_model(model, data.val_images, data.val_labels)
        yield T.Eval(step, vl, val_acc)
    yield T.Done(model, val_acc, step, time.perf_counter() - t0, reason)


__all__ = ["SmallCNN", "forward_flops", "make_cnn", "model_cost", "train_cnn", "train_module",
           "vit_flops_formula"]
