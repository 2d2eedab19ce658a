"""The app's speed goals, measured in one run.

Usage: python bench/app_speed.py [--spec random:vit_base_patch16_224] [--reps 20] [--no-startup]

1. First analysis of a new image: `explain.analyze` (the trace plus everything the pages derive)
   on images never seen before, median over a few. Goal (ViT-B/16, 2-core CPU): <= 1.0 s.
2. A cached interaction: the attention page re-run by AppTest after a layer / head / patch change,
   the analysis already cached; median of `--reps`. Goal: <= 100 ms server side.
3. What if? (issue #14): the What if? page re-run after a click that hides one more patch (a new
   masked forward pass, never cached before) against the cached interaction of item 2 (the
   attention page re-run after its layer slider moved), alternated in the same run; median of
   `--reps` each. Goal: the
   What-if interaction within 2x the plain page (`--what-if`, bundled model by default).
4. Start-up: `streamlit run app.py` until the first page shows its analysis in Chromium (the
   browser already running), median of `--startup-reps` fresh servers. Goal: <= 5 s.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vit_core.analysis import explain

from vit_core.io import loading


def random_image(seed: int, size: int = 320) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def first_analysis(spec: str, n: int = 5) -> dict:
    loaded = loading.load_model(spec, pretrained=not spec.startswith("random:"))
    explain.analyze(loaded.model, loaded.transform, loaded.data_config, random_image(999))  # warm-up
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        explain.analyze(loaded.model, loaded.transform, loaded.data_config, random_image(i))
        times.append(time.perf_counter() - t0)
    return {"spec": spec, "first_analysis_median_s": round(statistics.median(times), 3),
            "first_analysis_all_s": [round(t, 3) for t in times]}


def cached_interaction(spec: str, reps: int) -> dict:
    """Cycles through the four view widgets (layer, head, query patch, rollout depth), one change
    per rerun, each to a value not shown yet; the analysis is cached from the first run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "attention.py"), default_timeout=120)
    at.query_params["model"] = spec
    at.run()
    assert not at.exception, at.exception
    keys = ("att_layer", "att_head", "att_q", "att_roll")
    times, moved = [], []
    for i in range(reps):
        key = keys[i % len(keys)]
        w = next(x for x in list(at.slider) + list(at.selectbox) if x.key == key)
        if key == "att_head":
            raw = ["mean"] + [str(k) for k in range(1, len(w.options))]  # options hold the labels
            w.set_value(raw[(i // len(keys) + 1) % len(raw)])
        else:
            w.set_value(w.min + (i * 7 + 3) % (w.max - w.min + 1))
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
        moved.append(key)
    by_key = {k: round(1000 * statistics.median(t for t, m in zip(times, moved) if m == k), 1) for k in keys}
    return {"cached_interaction_median_ms": round(1000 * statistics.median(times), 1),
            "cached_interaction_max_ms": round(1000 * max(times), 1), "median_ms_by_widget": by_key}


def what_if_interaction(spec: str, reps: int) -> dict:
    """Median seconds of a What if? re-run after one more patch is hidden vs a plain page re-run."""
    from streamlit.testing.v1 import AppTest

    wi = AppTest.from_file(str(ROOT / "pages" / "what_if.py"), default_timeout=120)
    plain = AppTest.from_file(str(ROOT / "pages" / "attention.py"), default_timeout=120)
    for at in (wi, plain):
        at.query_params["model"] = spec
        at.run()
        assert not at.exception, at.exception
    import gc

    gc.collect()
    gc.freeze()  # as the server does after its warm-up (pages/_ui/warmup.py): collections skip the imports
    masked = next(m for m in wi.multiselect if m.key == "wi_masked")
    n = len(masked.options)
    t_wi, t_plain = [], []
    for i in range(reps):
        hide = sorted({(37 * i + 11) % n} | set((37 * j + 11) % n for j in range(i)))  # one more each time
        next(m for m in wi.multiselect if m.key == "wi_masked").set_value(hide)
        t0 = time.perf_counter()
        wi.run()
        t_wi.append(time.perf_counter() - t0)
        assert not wi.exception, wi.exception
        layer = next(x for x in plain.slider if x.key == "att_layer")  # the other pages' interaction:
        layer.set_value(layer.min + (i * 7 + 3) % (layer.max - layer.min + 1))  # a widget change
        t0 = time.perf_counter()
        plain.run()
        t_plain.append(time.perf_counter() - t0)
        assert not plain.exception, plain.exception
    a, b = statistics.median(t_wi), statistics.median(t_plain)
    return {"spec": spec, "what_if_click_median_ms": round(1000 * a, 1), "what_if_click_max_ms": round(1000 * max(t_wi), 1),
            "plain_page_median_ms": round(1000 * b, 1), "what_if_vs_plain": round(a / b, 2)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def startup() -> dict:
    """Seconds from `streamlit run` to the first page's title and to its analysis, in Chromium.

    The browser is started first, as a visitor's browser already runs; the clock starts with the
    server process.
    """
    from playwright.sync_api import sync_playwright

    port = free_port()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"),
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = b.new_page(viewport={"width": 1280, "height": 720})
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                                 "--server.headless=true", "--server.fileWatcherType=none",
                                 f"--server.port={port}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            t_health = time.perf_counter() - t0
            page.goto(f"http://localhost:{port}/")
            t_loaded = time.perf_counter() - t0
            page.get_by_role("heading", name="An image is worth 16x16 words").wait_for(timeout=60000)
            t_title = time.perf_counter() - t0
            page.get_by_text("Analysed in").first.wait_for(timeout=60000)
            t_page = time.perf_counter() - t0
        finally:
            b.close()
            proc.terminate()
            proc.wait(10)
    return {"startup_health_s": round(t_health, 2), "startup_html_loaded_s": round(t_loaded, 2),
            "startup_title_s": round(t_title, 2), "startup_first_page_interactive_s": round(t_page, 2)}


def startups(reps: int) -> dict:
    """`startup` on `reps` fresh servers: the median of each figure, and every run's interactive time."""
    runs = [startup() for _ in range(reps)]
    out = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}
    out["startup_first_page_interactive_all_s"] = [r["startup_first_page_interactive_s"] for r in runs]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="random:vit_base_patch16_224")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--startup-only", action="store_true")
    ap.add_argument("--what-if", nargs="?", const="bundled:shapes-vit", metavar="SPEC",
                    help="only the What if? interaction against a plain page (default model: the bundled one)")
    ap.add_argument("--startup-reps", type=int, default=3, help="fresh servers to start (median reported)")
    args = ap.parse_args()
    if args.what_if:
        print(json.dumps(what_if_interaction(args.what_if, args.reps), indent=2))
        return
    if args.startup_only:
        print(json.dumps(startups(args.startup_reps), indent=2))
        return
    out = first_analysis(args.spec)
    out.update(cached_interaction(args.spec, args.reps))
    print(json.dumps(out), flush=True)
    if not args.no_startup:
        out.update(startups(args.startup_reps))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
