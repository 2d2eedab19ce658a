"""How much the explicit trace costs over timm's own fused forward, on the same weights.

Usage: python bench/trace_overhead.py [--model vit_base_patch16_224] [--reps 20]

Measures alternately in one process (trace, timm, trace, timm, ...) so that machine noise hits
both sides alike, and prints the median ratio. Also times the trace of ViT-Ti/S/B and the memory
of one trace: peak RSS growth (ru_maxrss) and the bytes of the tensors the trace keeps.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vit_core import VisionTransformer


def timed(fn, x) -> float:
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def compare(name: str, reps: int, batch: int = 1) -> dict:
    ref = timm.create_model(name, pretrained=False).eval()
    ours = VisionTransformer.from_timm(ref).eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        for _ in range(3):  # warm-up: allocator, kernels, caches
            ours.trace(x)
            ref(x)
        t_trace, t_timm, t_fwd = [], [], []
        for _ in range(reps):
            t_trace.append(timed(ours.trace, x))
            t_timm.append(timed(ref, x))
            t_fwd.append(timed(ours, x))
    ratios = [a / b for a, b in zip(t_trace, t_timm)]
    return {
        "model": name,
        "reps": reps,
        "trace_ms": 1000 * statistics.median(t_trace),
        "timm_fused_ms": 1000 * statistics.median(t_timm),
        "ours_fused_ms": 1000 * statistics.median(t_fwd),
        "median_ratio_trace_to_timm": statistics.median(ratios),
        "median_ratio_ours_fused_to_timm": statistics.median(a / b for a, b in zip(t_fwd, t_timm)),
    }


def trace_memory_mb(name: str) -> tuple[float, float]:
    """(peak RSS growth, bytes kept by the trace) of one ViT trace at batch 1, in MB."""
    ref = timm.create_model(name, pretrained=False).eval()
    ours = VisionTransformer.from_timm(ref).eval()
    del ref
    x = torch.randn(1, 3, 224, 224)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode():
        tr = ours.trace(x)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kept = sum(t.numel() * t.element_size() for lst in (tr.attn, tr.q, tr.k, tr.v, tr.tokens) for t in lst)
    return max(0.0, (after - before) / 1024), kept / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", file=sys.stderr)
    main_result = compare(args.model, args.reps)
    print(json.dumps(main_result, indent=2))
    for name in ("vit_tiny_patch16_224", "vit_small_patch16_224"):
        r = compare(name, max(5, args.reps // 2))
        print(json.dumps({k: r[k] for k in ("model", "trace_ms", "timm_fused_ms", "median_ratio_trace_to_timm")}))
    growth, kept = trace_memory_mb(args.model)
    print(json.dumps({"model": args.model, "peak_rss_growth_mb": round(growth, 1),
                      "trace_tensors_kept_mb": round(kept, 1)}))


if __name__ == "__main__":
    main()
