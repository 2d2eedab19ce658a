"""One training step (forward + backward + AdamW) of vit_core's ViT vs timm's, same shape and weights.

The two models alternate within one run (ours, timm, ours, timm...) so that machine noise hits
both alike; the median of the per-pair time ratios is printed (goal: ours / timm <= 1.0).

Usage:
    python bench/train_step.py [--shape quick|nano|tiny|demo|base] [--batch 64] [--reps 20]
                               [--threads 2] [--device auto]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vit_core.model import VisionTransformer, count_params  # noqa: E402

# img, patch, dim, depth, heads, mlp ratio
SHAPES = {
    "quick": (48, 8, 64, 3, 4, 2.0),  # the page's default (shapes-quick)
    "nano": (32, 4, 96, 4, 3, 2.0),
    "tiny": (64, 8, 192, 6, 3, 4.0),
    "demo": (224, 16, 128, 4, 4, 4.0),  # the bundled model
    "base": (224, 16, 768, 12, 12, 4.0),  # ViT-B/16
}


def step_fn(model, opt, x, y, autocast):
    def step():
        with autocast:
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    img, patch, dim, depth, heads, ratio = SHAPES[a.shape]
    torch.manual_seed(0)
    timm_model = TimmViT(img_size=img, patch_size=patch, num_classes=10, embed_dim=dim, depth=depth,
                         num_heads=heads, mlp_ratio=ratio, qkv_bias=True).to(dev).train()
    ours = VisionTransformer.from_timm(timm_model).to(dev).train()
    assert count_params(ours) == count_params(timm_model)
    x = torch.randn(a.batch, 3, img, img, device=dev)
    y = torch.randint(0, 10, (a.batch,), device=dev)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    steps = {name: step_fn(m, torch.optim.AdamW(m.parameters(), lr=1e-4), x, y, autocast)
             for name, m in (("ours", ours), ("timm", timm_model))}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def timed(name):
        sync()
        t = time.perf_counter()
        steps[name]()
        sync()
        return time.perf_counter() - t

    for _ in range(a.warmup):
        timed("ours"), timed("timm")
    times = {"ours": [], "timm": []}
    ratios = []
    for i in range(a.reps):
        order = ("ours", "timm") if i % 2 == 0 else ("timm", "ours")
        got = {n: timed(n) for n in order}
        for n in got:
            times[n].append(got[n])
        ratios.append(got["ours"] / got["timm"])
    where = (torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {a.threads} threads")
    print(f"shape {a.shape}: {img}px / patch {patch}, D={dim}, depth {depth}, {heads} heads, "
          f"{count_params(ours) / 1e6:.2f}M params, batch {a.batch}, {where}, {a.reps} reps")
    for n in ("ours", "timm"):
        ms = statistics.median(times[n]) * 1000
        print(f"  {n:5s} median {ms:8.2f} ms/step   {a.batch / ms * 1000:8.0f} img/s")
    print(f"median ratio ours/timm: {statistics.median(ratios):.3f}  (<= 1.0 means ours is at least as fast)")


if __name__ == "__main__":
    main()
