"""Train a ViT from scratch, UI-free: ``train(cfg)`` yields progress events.

The live-training page runs ``train`` in a background thread and draws the events; the CLI
below prints them. The loop uses the fused ``model(x)`` path (fast); the explicit ``trace``
path is used only for snapshots of attention. What the loop eats (data sources, normalisation,
augmentation) lives in ``vit_core.data.source``.

    python -m vit_core.training.loop --preset shapes-quick --max-seconds 60 --out /tmp/quick
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vit_core.data.source import DATA_SOURCES, MEAN, STD, DataSource, _step_seed, augment, normalize
from vit_core.model import VisionTransformer
from vit_core.training.config import PRESETS, TrainConfig, get_preset


# --- events ---------------------------------------------------------------------------------
@dataclass
class Step:
    step: int
    epoch: float  # passes over the fixed training set; 0 with fresh data every step
    loss: float
    train_acc: float
    lr: float
    images_per_s: float
    elapsed_s: float
    eta_s: float | None


@dataclass
class Eval:
    step: int
    val_loss: float
    val_acc: float


@dataclass
class Snapshot:
    step: int
    pos_similarity: np.ndarray  # (N, gh, gw) float32: cosine similarity of patch positions
    rollout: np.ndarray  # (gh, gw) float32: last-layer attention rollout on a fixed val image
    image: np.ndarray  # (H, W, 3) uint8, that val image


@dataclass
class Done:
    model: VisionTransformer
    val_acc: float
    steps: int
    seconds: float
    reason: str  # "finished", "time budget", "stopped" or "diverged: <why>"


Event = Step | Eval | Snapshot | Done


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
def evaluate_model(model: VisionTransformer, images: torch.Tensor, labels: torch.Tensor,
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


def build_model(cfg: TrainConfig) -> VisionTransformer:
    """The initial model: seeded from ``cfg.seed`` (global RNG untouched), or ``cfg.init_from``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = VisionTransformer(cfg.vit)
    if cfg.init_from:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(cfg.init_from), strict=True)
    return model


# --- the loop -------------------------------------------------------------------------------


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

def train(cfg: TrainConfig, stop_event: threading.Event | None = None,
          data: DataSource | None = None, compile_model: bool = False) -> Iterator[Event]:
    """Train from scratch, yielding Step (every step), Eval, Snapshot and finally Done.

    ``compile_model`` runs the training forward pass through ``torch.compile`` (worth it on CUDA).
    """
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.num_threads or os.cpu_count() or 1)
    try:
        yield from _train(cfg, stop_event, data, compile_model)
    finally:
        torch.set_num_threads(prev_threads)


def _train(cfg: TrainConfig, stop_event, data, compile_model: bool = False) -> Iterator[Event]:
    dev = pick_device(cfg.device)
    data = data or DATA_SOURCES[cfg.dataset](cfg)
    if len(data.classes) != cfg.vit.num_classes:
        cfg.vit = dataclasses.replace(cfg.vit, num_classes=len(data.classes))
    model = build_model(cfg).to(dev).train()
    features = torch.compile(model.forward_features) if compile_model else model.forward_features
    decays = lambda n, p: p.ndim >= 2 and ("pos_embed" not in n or cfg.decay_pos_embed)  # noqa: E731
    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.999))
    g = torch.Generator().manual_seed(_step_seed(cfg.seed, -10**6))
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
        tok = cfg.token_label_weight > 0 and bool(masks)
        if tok:  # the mask rides along as a 4th channel so it moves with the image
            x = torch.cat([x, masks[0][:, None].float()], 1)
        if cfg.augment:
            x = augment(x, cfg.shift_px, g)
        if tok:
            x, m = x[:, :3], x[:, 3:]
        x, y = x.to(dev), labels.to(dev)
        with autocast:
            feats = features(x)
            out = model.forward_head(feats)
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
        if cfg.snapshot_every and step % cfg.snapshot_every == 0:
            yield snapshot(model, snap_image, step)
    model.eval()
    if not reason.startswith("diverged") and last_eval != step:
        vl, val_acc = evaluate_model(model, data.val_images, data.val_labels)
        yield Eval(step, vl, val_acc)
    yield Done(model, val_acc, step, time.perf_counter() - t0, reason)


def run(cfg: TrainConfig, stop_event=None, log=None, data: DataSource | None = None) -> Done:
    """Drive ``train`` to the end, optionally printing progress lines with ``log``."""
    done = None
    for ev in train(cfg, stop_event, data):
        if isinstance(ev, Step) and log and (ev.step % 25 == 0 or ev.step == 1):
            log(f"step {ev.step} loss {ev.loss:.4f} acc {ev.train_acc:.3f} lr {ev.lr:.2e} "
                f"{ev.images_per_s:.1f} img/s {ev.elapsed_s:.0f}s")
        elif isinstance(ev, Eval) and log:
            log(f"eval step {ev.step} val_loss {ev.val_loss:.4f} val_acc {ev.val_acc:.4f} "
                f"t {time.perf_counter():.0f}")
        elif isinstance(ev, Done):
            done = ev
    return done


# --- saving ---------------------------------------------------------------------------------
def data_config(cfg: TrainConfig) -> dict:
    return {"input_size": [3, cfg.img_size, cfg.img_size], "mean": list(MEAN), "std": list(STD),
            "crop_pct": 1.0, "interpolation": "bicubic"}


def save(out_dir: str, cfg: TrainConfig, done: Done, classes: list[str], extra: dict | None = None) -> None:
    """Write ``model.safetensors`` + ``model.json`` (format vit-explainer/1) into ``out_dir``."""
    from vit_core.io.loading import save_model

    meta = {"train_config": cfg.to_dict(), "val_acc": done.val_acc, "steps": done.steps,
            "seconds": round(done.seconds, 1), "reason": done.reason,
            "images_seen": done.steps * cfg.batch_size, "torch": torch.__version__, **(extra or {})}
    save_model(out_dir, done.model, classes, data_config(cfg), meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vit_core.training.loop", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="shapes-quick", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int)
    ap.add_argument("--max-seconds", type=float)
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", help="directory to save model.safetensors + model.json")
    ap.add_argument("--set", dest="overrides", default="{}",
                    help='JSON object of TrainConfig fields to override, e.g. \'{"lr": 1e-3}\'')
    a = ap.parse_args(argv)
    over = {k: v for k, v in (("seed", a.seed), ("max_seconds", a.max_seconds), ("max_steps", a.max_steps),
                              ("num_threads", a.threads)) if v is not None}
    if a.max_seconds is not None and a.max_steps is None:
        over["max_steps"] = None  # a time budget alone: the schedule follows the clock
    if a.max_steps is not None and a.max_seconds is None:
        over["max_seconds"] = None
    over.update(json.loads(a.overrides))
    cfg = get_preset(a.preset, **over)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    log(f"preset {a.preset}: {json.dumps(cfg.to_dict())}")
    t = time.perf_counter()
    data = DATA_SOURCES[cfg.dataset](cfg)
    data_s = time.perf_counter() - t
    log(f"data ready in {data_s:.1f}s")
    done = run(cfg, log=log, data=data)
    if a.out:
        save(a.out, cfg, done, data.classes, {"preset": a.preset, "data_seconds": round(data_s, 1)})
        log(f"saved to {a.out}")
    print(json.dumps({"preset": a.preset, "val_acc": done.val_acc, "seconds": round(done.seconds, 2),
                      "data_seconds": round(data_s, 2),
                      "steps": done.steps, "reason": done.reason, "out": a.out}))
    return 0 if not done.reason.startswith("diverged") else 1


if __name__ == "__main__":
    sys.exit(main())
