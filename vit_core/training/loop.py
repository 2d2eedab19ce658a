"""Train a ViT (or the CNN it is compared with) from scratch, UI-free: ``train(cfg)`` yields events.

One loop, :func:`fit`, trains any classifier: the ViT of ``cfg.vit`` or the ResNet-style CNN of
similar parameter count (``vit_core.cnn``), with the same data, schedule, optimiser rule,
augmentation, label smoothing, gradient clipping and divergence check, so only the model
differs. The ViT alone gets token labelling and "watch it learn" snapshots. The loop uses the
fused ``model(x)`` path (fast); the explicit ``trace`` path is used only for snapshots.

The loop never changes torch's thread count (a process-wide setting): whoever runs it decides,
the CLI (``python -m vit_core.training``) or a job's worker process (``vit_core.training.worker``).
What the loop eats lives in ``vit_core.data.source`` and ``vit_core.training.sources``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vit_core.data.source import DataSource, augment, normalize, step_seed
from vit_core.model import VisionTransformer
from vit_core.training.config import TrainConfig
from vit_core.training.events import Done, Eval, Event, Snapshot, Step
from vit_core.training.sources import DATA_SOURCES


# --- helpers --------------------------------------------------------------------------------
def lr_at(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """Linear warm-up, then cosine to min_lr_ratio * lr over whichever budget is closer to spent."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    fracs = [0.0]
    if cfg.max_steps:
        fracs.append((step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    if cfg.max_seconds:
        fracs.append(elapsed / cfg.max_seconds)
    p = min(1.0, max(fracs))
    lo = cfg.lr * cfg.min_lr_ratio
    return lo + (cfg.lr - lo) * 0.5 * (1 + math.cos(math.pi * p))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@torch.no_grad()
def evaluate_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   batch_size: int = 100) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on uint8 images, fused path."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    loss_sum, correct = 0.0, 0
    for i in range(0, len(labels), batch_size):
        x, y = normalize(images[i:i + batch_size]).to(dev), labels[i:i + batch_size].to(dev)
        out = model(x).float()
        loss_sum += F.cross_entropy(out, y, reduction="sum").item()
        correct += int((out.argmax(1) == y).sum())
    model.train(was)
    n = max(1, len(labels))
    return loss_sum / n, correct / n


@torch.no_grad()
def snapshot(model: VisionTransformer, image: torch.Tensor, step: int) -> Snapshot:
    from vit_core.analysis.maps import attention_rollout, patch_pos_embed, position_similarity, rollout_map

    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    tr = model.trace(normalize(image[None]).to(dev))
    model.train(was)
    grid = model.cfg.grid_size
    roll = attention_rollout([a[0] for a in tr.attn], num_prefix_tokens=tr.num_prefix_tokens)
    rmap = rollout_map(roll, roll.shape[0], grid, tr.num_prefix_tokens)
    sim = position_similarity(patch_pos_embed(model), grid)
    return Snapshot(step, sim.numpy().astype(np.float32), rmap.numpy().astype(np.float32),
                    image.permute(1, 2, 0).numpy().copy())


def end_reason(cfg: TrainConfig, step: int, elapsed: float, stop_event) -> str | None:
    """Why the loop ends before this step ("finished", "time budget", "stopped"), or None to go on."""
    if cfg.max_steps is not None and step >= cfg.max_steps:
        return "finished"
    if cfg.max_seconds is not None and elapsed >= cfg.max_seconds:
        return "time budget"
    if stop_event is not None and stop_event.is_set():
        return "stopped"
    return None


def divergence(loss: float, explode: float, step: int, lr: float) -> str | None:
    """The "diverged: ..." reason when the loss is NaN, infinite or above `explode`, else None."""
    if math.isfinite(loss) and loss <= explode:
        return None
    what = "became NaN" if math.isnan(loss) else ("became infinite" if not math.isfinite(loss)
                                                   else f"exploded to {loss:.3g}")
    return f"diverged: loss {what} at step {step} (lr {lr:.3g}): lower the learning rate or lengthen the warm-up"


def apply_update(model: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor,
                 grad_clip: float | None) -> None:
    """Backward, optional gradient clipping, optimiser step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()


def step_event(cfg: TrainConfig, data, step: int, t0: float, loss: float, out: torch.Tensor,
               y: torch.Tensor, lr: float) -> "Step":
    """The Step metrics after `step` updates: throughput, epoch and the ETA of the nearer budget."""
    elapsed = time.perf_counter() - t0
    eta = []
    if cfg.max_steps is not None:
        eta.append(elapsed / step * (cfg.max_steps - step))
    if cfg.max_seconds is not None:
        eta.append(max(0.0, cfg.max_seconds - elapsed))
    epoch = step * cfg.batch_size / data.train_size if data.train_size else 0.0
    return Step(step, epoch, loss, float((out.argmax(1) == y).float().mean()), lr,
                step * cfg.batch_size / max(elapsed, 1e-9), elapsed, min(eta) if eta else None)


# --- the loop -------------------------------------------------------------------------------
def build_model(cfg: TrainConfig, family: str = "vit") -> nn.Module:
    """The initial model, seeded from ``cfg.seed`` (global RNG untouched).

    Args:
        family: "vit": ``cfg.vit`` (or the weights of ``cfg.init_from``); "cnn": the SmallCNN
            matched to ``cfg.vit`` in parameters (``vit_core.cnn.matched_cnn``).
    """
    if family == "cnn":
        from vit_core.cnn import matched_cnn

        return matched_cnn(cfg.vit, seed=cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = VisionTransformer(cfg.vit)
    if cfg.init_from:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(cfg.init_from), strict=True)
    return model


def with_classes(cfg: TrainConfig, k: int) -> TrainConfig:
    """``cfg`` with a head of ``k`` classes (the data's)."""
    if cfg.vit.num_classes == k:
        return cfg
    return dataclasses.replace(cfg, vit=dataclasses.replace(cfg.vit, num_classes=k))




def param_groups(model: nn.Module, weight_decay: float, decay_pos_embed: bool = False) -> list[dict]:
    """AdamW's parameter groups, one rule for every model (ViT and CNN alike).

    Weight decay applies to every parameter of two or more dimensions: weight matrices,
    convolution kernels, the [CLS] and register tokens. Never decayed: biases and normalisation
    parameters (every 1-D parameter), and the position embeddings unless ``decay_pos_embed`` (the
    bundled model's recipe: decay fades their random init). This is the rule the bundled model
    was trained with, so `make model` keeps reproducing it; the CNN has no tokens, so for it the
    rule is simply "matrices and kernels".
    """
    def decays(name: str, p: torch.Tensor) -> bool:
        if p.ndim < 2:
            return False
        return decay_pos_embed if name.rsplit(".", 1)[-1] == "pos_embed" else True

    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if decays(n, p)], "weight_decay": weight_decay},
            {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0}]


def train(cfg: TrainConfig, stop_event=None, data: DataSource | None = None, compile_model: bool = False,
          family: str = "vit") -> Iterator[Event]:
    """Train a fresh ``family`` model ("vit" or "cnn") of ``cfg`` (classes from the data) with :func:`fit`.

    ``stop_event`` is anything with ``is_set()`` (a threading or multiprocessing Event).
    """
    data = data or DATA_SOURCES[cfg.dataset](cfg)
    cfg = with_classes(cfg, len(data.classes))
    yield from fit(build_model(cfg, family), cfg, stop_event, data, compile_model)


def fit(model: nn.Module, cfg: TrainConfig, stop_event=None, data: DataSource | None = None,
        compile_model: bool = False) -> Iterator[Event]:
    """Train ``model`` by ``cfg``'s recipe, yielding Step (every step), Eval, Snapshot and finally Done.

    AdamW with :func:`param_groups`' decay rule, linear warm-up then cosine (:func:`lr_at`),
    optional augmentation, label smoothing and gradient clipping; bf16 autocast on CUDA. A ViT
    also gets token labelling (``cfg.token_label_weight``, when the data has object masks) and
    Snapshots every ``cfg.snapshot_every`` steps. ``compile_model`` runs the training forward pass
    through ``torch.compile`` (worth it on CUDA).
    """
    dev = pick_device(cfg.device)
    data = data or DATA_SOURCES[cfg.dataset](cfg)
    vit = isinstance(model, VisionTransformer)
    model = model.to(dev).train()
    if dev.type == "cuda" and not vit:
        model = model.to(memory_format=torch.channels_last)
    if vit:
        features = torch.compile(model.forward_features) if compile_model else model.forward_features
    forward = torch.compile(model) if compile_model and not vit else model
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.decay_pos_embed), lr=cfg.lr,
                            betas=(0.9, 0.999))
    g = torch.Generator().manual_seed(step_seed(cfg.seed, -10**6))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda"
                else contextlib.nullcontext())
    snap_image = data.val_images[0]
    explode = 10 * math.log(max(2, len(data.classes))) + 5
    t0, step, val_acc, last_eval = time.perf_counter(), 0, float("nan"), -1
    reason = "finished"
    while True:
        elapsed = time.perf_counter() - t0
        ended = end_reason(cfg, step, elapsed, stop_event)
        if ended:
            reason = ended
            break
        lr = lr_at(cfg, step, elapsed)
        for pg in opt.param_groups:
            pg["lr"] = lr
        images, labels, *masks = data.train_batch(step)
        x = normalize(images)
        tok = vit and cfg.token_label_weight > 0 and bool(masks)
        if tok:  # the mask rides along as a 4th channel so it moves with the image
            x = torch.cat([x, masks[0][:, None].float()], 1)
        if cfg.augment:
            x = augment(x, cfg.shift_px, g)
        if tok:
            x, m = x[:, :3], x[:, 3:]
        x, y = x.to(dev), labels.to(dev)
        with autocast:
            if vit:
                feats = features(x)
                out = model.forward_head(feats)
            else:
                out = forward(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=cfg.label_smoothing)
        if tok:  # token labelling: patches mostly on the object must name the object's class too
            on = (F.avg_pool2d(m, cfg.vit.patch_size).flatten(1) > 0.5).to(dev)  # (B, N)
            if on.any():
                tl = model.head(feats[:, model.num_prefix_tokens:][on]).float()
                loss = loss + cfg.token_label_weight * F.cross_entropy(
                    tl, y[:, None].expand_as(on)[on], label_smoothing=cfg.label_smoothing)
        lv = loss.item()
        diverged = divergence(lv, explode, step, lr)
        if diverged:
            reason = diverged
            break
        apply_update(model, opt, loss, cfg.grad_clip)
        step += 1
        yield step_event(cfg, data, step, t0, lv, out, y, lr)
        if cfg.eval_every and step % cfg.eval_every == 0:
            vl, val_acc = evaluate_model(model, data.val_images, data.val_labels)
            last_eval = step
            yield Eval(step, vl, val_acc)
        if vit and cfg.snapshot_every and step % cfg.snapshot_every == 0:
            yield snapshot(model, snap_image, step)
    model.eval()
    if not reason.startswith("diverged") and last_eval != step:
        vl, val_acc = evaluate_model(model, data.val_images, data.val_labels)
        yield Eval(step, vl, val_acc)
    yield Done(model, val_acc, step, time.perf_counter() - t0, reason)


def run(cfg: TrainConfig, stop_event=None, log=None, data: DataSource | None = None,
        family: str = "vit") -> Done:
    """Drive ``train`` to the end, optionally printing progress lines with ``log``."""
    done = None
    for ev in train(cfg, stop_event, data, family=family):
        if isinstance(ev, Step) and log and (ev.step % 25 == 0 or ev.step == 1):
            log(f"step {ev.step} loss {ev.loss:.4f} acc {ev.train_acc:.3f} lr {ev.lr:.2e} "
                f"{ev.images_per_s:.1f} img/s {ev.elapsed_s:.0f}s")
        elif isinstance(ev, Eval) and log:
            log(f"eval step {ev.step} val_loss {ev.val_loss:.4f} val_acc {ev.val_acc:.4f} "
                f"t {time.perf_counter():.0f}")
        elif isinstance(ev, Done):
            done = ev
    return done


if __name__ == "__main__":  # the old command line: python -m vit_core.training.loop (same as -m vit_core.training)
    import runpy

    runpy.run_module("vit_core.training", run_name="__main__", alter_sys=True)


__all__ = ["Done", "Eval", "Event", "Snapshot", "Step", "build_model", "evaluate_model", "fit", "lr_at",
           "param_groups", "pick_device", "run", "snapshot", "train", "with_classes"]
