"""A class of simulated students against a real Streamlit server, through its browser protocol.

Each student loads the page, opens Streamlit's websocket, runs a deep link and then every page of
the app in order (bench/_classroom_client.py speaks the protocol); the tool reports page run times,
exceptions and error boxes the app showed, failed sessions, reconnections, the replica split
behind a balancer and the server's memory. Exit code 0 unless the tool itself fails.

    python bench/classroom.py --app app.py --students 30 --scenario walk --baseline
    python bench/classroom.py --url http://127.0.0.1:8080 --students 60 --ramp 30 --scenario upload \
        --model random:vit_base_patch16_224 --json /tmp/class.json
"""
from __future__ import annotations

import argparse
import ast
import asyncio
import io
import json
import math
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _classroom_client import Dropped, PageTimeout, Student, Visit, queue_position  # noqa: E402
from _classroom_server import RssSampler, Server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL_APP = Path(__file__).resolve().parent / "trivial_app.py"
SCENARIOS = ("walk", "upload", "lecture", "train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--app", help="start `streamlit run APP` on a free localhost port (stopped at the end)")
    where.add_argument("--url", help="base URL of a running server or balancer, e.g. http://127.0.0.1:8501")
    p.add_argument("--students", type=int, default=10, help="class size (default 10)")
    p.add_argument("--scenario", choices=SCENARIOS, default="walk",
                   help="walk: deep link then every page; upload: own photo first; lecture: pauses between "
                        "pages; train: press Train and watch the page (default walk)")
    p.add_argument("--ramp", type=float, default=0.0, help="students start spread evenly over SECONDS")
    p.add_argument("--timeout", type=float, default=600, help="seconds for the whole class (default 600)")
    p.add_argument("--page-timeout", type=float, default=180, help="seconds for one page run (default 180)")
    p.add_argument("--pause-min", type=float, default=10.0, help="lecture: pause between pages, min (s)")
    p.add_argument("--pause-max", type=float, default=20.0, help="lecture: pause between pages, max (s)")
    p.add_argument("--page", default="", help="url path of the deep link students open (default: the app's default page)")
    p.add_argument("--query", default="", help="query string of the deep link, e.g. 'sample=grace_hopper.jpg'")
    p.add_argument("--model", help="model for the sidebar: a catalog spec (random:vit_base_patch16_224) or its label")
    p.add_argument("--model-param", default="model", help="URL parameter of the model selectbox (default model)")
    p.add_argument("--upload-param", default="source=Upload", help="query that shows the uploader (default source=Upload)")
    p.add_argument("--uploader-label", default=None, help="label of the file_uploader (default: the first one)")
    p.add_argument("--train-page", default="train", help="train: url path of the training page")
    p.add_argument("--train-button", default="Train the ViT", help="train: label of the button to press")
    p.add_argument("--stop-button", default="Stop", help="train: button pressed before leaving ('' to just leave)")
    p.add_argument("--train-watch", type=float, default=20.0, help="train: seconds to watch the page after the click")
    p.add_argument("--others", type=int, default=0,
                   help="train: also N other students walking at lecture pace (--pause-min/max), first alone, "
                        "then while the class trains; reports their page p95 loaded / unloaded")
    p.add_argument("--max-pages", type=int, default=None,
                   help="visit at most N pages after the deep link (default: all of them)")
    p.add_argument("--keep-query", action="store_true",
                   help="send every deep-link parameter on each navigation, whatever the server changed (a "
                        "browser keeps only the widget-bound parameters of its current URL)")
    p.add_argument("--no-media", action="store_true", help="do not fetch the /media images a page shows")
    p.add_argument("--sticky-cookie", default="SERVERID", help="balancer cookie whose values give the replica split")
    p.add_argument("--server-pid", type=int, action="append", default=[], help="sample this pid's RSS (repeatable)")
    p.add_argument("--settle", type=float, default=10.0, help="seconds after the last student left before 'after' RSS")
    p.add_argument("--baseline", action="store_true", help="also run the class against bench/trivial_app.py")
    p.add_argument("--baseline-pages", type=int, default=None, help="trivial app's page count (default: the target's)")
    p.add_argument("--second-class", action="store_true", help="run the class twice against the same server")
    p.add_argument("--warm", type=int, default=0,
                   help="first walk N students through every page, unmeasured (warm caches), on each server")
    p.add_argument("--lecturer", action="store_true",
                   help="first one session opens the deep link, unmeasured: the lecturer's tab that shows the QR "
                        "code (on each server)")
    p.add_argument("--seed", type=int, default=0, help="seed for photos and lecture pauses")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--loop", choices=("auto", "asyncio"), default="auto",
                   help="the students' event loop: auto takes uvloop when installed (streamlit[performance], "
                        "not in requirements.txt: BENCHMARKS 'Lecture hall'), which cuts this tool's CPU by ~40%%")
    args = p.parse_args(argv)
    if args.pause_max < args.pause_min:
        p.error("--pause-max is below --pause-min")
    return args


def catalog_label(spec: str) -> str:
    """The sidebar's label for a model spec: Streamlit binds a selectbox to the URL by its formatted
    option, so ``?model=`` takes the label. Read from the app's CATALOG without importing the app."""
    for path in sorted(ROOT.glob("vit_core/**/loading.py")):
        try:
            tree = ast.parse(path.read_text())
        except (OSError, SyntaxError):
            continue
        for node in ast.walk(tree):
            target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and getattr(target, "id", "") == "CATALOG":
                try:
                    labels = dict(ast.literal_eval(node.value))
                except ValueError:
                    continue
                if spec in labels:
                    return labels[spec]
    return spec


def photos(n: int, seed: int) -> list[bytes]:
    """``n`` distinct 640x480 JPEGs that look like photos (gradients, shapes, noise), not noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        y, x = np.mgrid[0:480, 0:640] / 640.0
        base = np.stack([rng.uniform(40, 215) + rng.uniform(-90, 90) * (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1))
                         for _ in range(3)], -1)
        img = Image.fromarray(np.clip(base, 0, 255).astype("uint8"))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(4, 10))):
            x0, y0 = int(rng.integers(0, 560)), int(rng.integers(0, 400))
            box = (x0, y0, x0 + int(rng.integers(30, 260)), y0 + int(rng.integers(30, 220)))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.int16)
        arr = np.clip(arr + rng.normal(0, 6, arr.shape), 0, 255).astype("uint8")
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=88)
        out.append(buf.getvalue())
    return out


def check_bound(st: Student, key: str, value: str) -> None:
    """Warn when no widget is bound to ``?key=`` or ``value`` is not one of its options."""
    for el, _ in st.elements.values():
        w = getattr(el, el.WhichOneof("type"))
        if getattr(w, "query_param_key", None) == key:
            if hasattr(w, "options") and value not in list(w.options):
                st.warnings.append(f"?{key}={value!r} is not one of the options {list(w.options)}")
            return
    st.warnings.append(f"no widget on [/{st.path}] is bound to ?{key}=")


async def attend(st: Student, args, photo: bytes | None, delay: float, rng: random.Random) -> None:
    """One student's class: the deep link, then the scenario's steps."""
    await asyncio.sleep(delay)
    t0 = time.monotonic()
    start = args.train_page if args.scenario == "train" else args.page
    await st.step(st.run_page, start)
    st.open_s = time.monotonic() - t0
    if args.model:
        check_bound(st, args.model_param, st.query[args.model_param])
    if args.scenario == "train":
        await train(st, args)
        return
    if args.scenario == "upload":
        done = await st.step(st.upload, f"student-{st.index:03d}.jpg", photo, args.uploader_label)
        if done is not None:  # the page's visit is the run that showed the student's own photo
            st.upload_s = done[0]
            st.visits[-1] = Visit(st.visits[-1].path, done[1])
    opened = st.path
    walk = [p for p in st.pages if not (p.url_pathname == opened or p.is_hidden or p.HasField("external_url"))]
    for page in walk[:args.max_pages]:
        if args.scenario == "lecture":
            await asyncio.sleep(rng.uniform(args.pause_min, args.pause_max))
        await st.step(st.run_page, page.url_pathname)


async def train(st: Student, args) -> None:
    st.clicked = await st.step(st.press, args.train_button)
    if not st.clicked:
        st.warnings.append(f"[/{st.path}] no enabled button {args.train_button!r}")
        return
    await st.step(st.watch, args.train_watch)
    if args.stop_button:
        await st.step(st.press, args.stop_button)


async def run_class(base: str, args, pids: list[int], label: str) -> dict:
    """Send the class to ``base``; the results as the JSON report has them."""
    # Each class its own photos: the same bytes twice would hit the app's analysis cache.
    rng = random.Random(f"{args.seed}:{label}")
    query = dict(parse_qsl(args.query, keep_blank_values=True))
    if args.model:
        query[args.model_param] = catalog_label(args.model)
    if args.scenario == "upload":
        query.update(parse_qsl(args.upload_param))
    pics = await asyncio.to_thread(photos, args.students, rng.randrange(2 ** 31)) if args.scenario == "upload" else []
    students = [Student(base, i, dict(query), page_timeout=args.page_timeout, keep_query=args.keep_query,
                        fetch_media=not args.no_media) for i in range(args.students)]
    sampler = RssSampler(pids)
    before = sampler.sample() if pids else None
    sampler.start()

    async def one(st: Student, i: int) -> None:
        try:
            await attend(st, args, pics[i] if pics else None, args.ramp * i / max(args.students, 1),
                         random.Random(f"{args.seed}:{label}:{i}"))
        except (Dropped, PageTimeout, OSError) as err:
            st.failure = f"{type(err).__name__}: {err}"
        except asyncio.CancelledError:
            st.failure = f"class timeout ({args.timeout:g} s)"
        except Exception as err:  # a protocol surprise: report it, keep the class going
            st.failure = f"{type(err).__name__}: {err}"
        finally:
            await st.close()
            st.left = time.monotonic()

    t0 = time.monotonic()
    tasks = [asyncio.create_task(one(st, i)) for i, st in enumerate(students)]
    _, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for t in pending:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.monotonic() - t0
    peak = sampler.peak if pids else None
    after = None
    if pids:
        await asyncio.sleep(max(0.0, max(st.left for st in students) + args.settle - time.monotonic()))
        await sampler.stop()
        after = sampler.sample()
    return summarize(students, wall, label, before, peak, after, args)


def stats(xs: list[float]) -> dict:
    """p50, p95 (nearest rank), max and n of ``xs``, in seconds."""
    if not xs:
        return {"p50": None, "p95": None, "max": None, "n": 0}
    s = sorted(xs)

    def rank(q: float) -> float:
        return round(s[max(0, math.ceil(q * len(s)) - 1)], 3)

    return {"p50": rank(0.5), "p95": rank(0.95), "max": round(s[-1], 3), "n": len(s)}


def summarize(students: list[Student], wall: float, label: str, before, peak, after, args) -> dict:
    page_list = next((st.pages for st in students if any(p.url_pathname for p in st.pages)),
                     next((st.pages for st in students if st.pages), []))
    page_list = [p for p in page_list if not p.is_hidden and not p.HasField("external_url")]  # what students click
    order = [p.url_pathname for p in page_list]
    runs: dict[str, list[float]] = {}
    for st in students:
        for v in st.visits:
            runs.setdefault(v.path, []).append(v.seconds)
    pages = {p: stats(runs[p]) for p in sorted(runs, key=lambda p: order.index(p) if p in order else len(order))}
    split = Counter(st.jar.values[c] for st in students for c in [args.sticky_cookie] if c in st.jar.values)
    # What each student's page said when the watch ended, digits kept (a queue position is news).
    statuses = Counter(" ".join(st.statuses[-1].split())[:80] for st in students if st.statuses)
    queue = [q for st in students for s in st.statuses if (q := queue_position(s)) is not None]
    pooled = stats([v.seconds for st in students for v in st.visits])  # every page run of every student
    return {
        "label": label,
        "students": len(students),
        "finished": sum(st.failure is None for st in students),
        "failed_sessions": sum(st.failure is not None for st in students),
        "failures": sorted(Counter(st.failure for st in students if st.failure).items(), key=lambda kv: -kv[1]),
        "wall_s": round(wall, 3),
        "page_list": [{"url_path": p.url_pathname, "title": p.page_name} for p in page_list],
        "pages": pages,
        "median_page_s": pooled["p50"],
        "all_runs": pooled,
        "open": {k: v for k, v in stats([st.open_s for st in students if st.open_s is not None]).items()},
        "upload": stats([st.upload_s for st in students if st.upload_s is not None]),
        "exceptions": sum(len(st.exceptions) for st in students),
        "exception_texts": list(dict.fromkeys(t for st in students for t in st.exceptions))[:30],
        "errors": sum(len(st.errors) for st in students),
        "error_texts": list(dict.fromkeys(t for st in students for t in st.errors))[:30],
        "warnings": list(dict.fromkeys(t for st in students for t in st.warnings))[:10],
        "upload_failures": sum(st.upload_failures for st in students),
        "media_failures": sum(st.media_failures for st in students),
        "reconnections": sum(st.reconnections for st in students),
        "replica_split": dict(split),
        "train": {"clicked": sum(bool(st.clicked) for st in students),
                  "last_status": dict(statuses.most_common(12)),
                  "max_queue_position": max(queue, default=None)} if args.scenario == "train" else None,
        "before_rss_mb": None if before is None else round(before, 1),
        "peak_rss_mb": None if peak is None else round(peak, 1),
        "after_rss_mb": None if after is None else round(after, 1),
    }


def fmt(x, unit: str = "") -> str:
    return "–" if x is None else f"{x:.2f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def print_report(r: dict, title: str, args) -> None:
    print(f"\n=== {title}: {r['students']} students, {args.scenario}, wall {r['wall_s']:.1f} s ===")
    titles = {p["url_path"]: p["title"] for p in r["page_list"]}
    print(f"{'page':<34}{'p50 s':>8}{'p95 s':>8}{'max s':>8}{'n':>5}")
    for path, s in r["pages"].items():
        name = f"/{path} ({titles.get(path, '?')})"[:33]
        print(f"{name:<34}{fmt(s['p50']):>8}{fmt(s['p95']):>8}{fmt(s['max']):>8}{s['n']:>5}")
    o = r["open"]
    print(f"{'opening (GET to first page)':<34}{fmt(o['p50']):>8}{fmt(o['p95']):>8}{fmt(o['max']):>8}{o['n']:>5}")
    if r["upload"]["n"]:
        u = r["upload"]
        print(f"{'upload (URL request to rerun)':<34}{fmt(u['p50']):>8}{fmt(u['p95']):>8}{fmt(u['max']):>8}{u['n']:>5}")
    print(f"finished {r['finished']}/{r['students']}, failed sessions {r['failed_sessions']}, "
          f"reconnections {r['reconnections']}, upload failures {r['upload_failures']}, "
          f"media failures {r['media_failures']}")
    for text, n in r["failures"][:5]:
        print(f"  failed x{n}: {text}")
    print(f"exceptions {r['exceptions']}, error boxes {r['errors']}")
    for t in r["exception_texts"][:10] + r["error_texts"][:10]:
        print(f"  {t}")
    for t in r["warnings"]:
        print(f"  warning: {t}")
    if r["replica_split"]:
        print("replica split (" + args.sticky_cookie + "): "
              + ", ".join(f"{k}={v}" for k, v in sorted(r["replica_split"].items())))
    if r["train"]:
        t = r["train"]
        print(f"train: clicked {t['clicked']}, max queue position {fmt(t['max_queue_position'])}")
        for text, n in t["last_status"].items():
            print(f"  x{n}: {text}")
    if r["peak_rss_mb"] is not None:
        print(f"server RSS: before {r['before_rss_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB, "
              f"after {r['after_rss_mb']:.0f} MB ({args.settle:g} s after the last student left)")


def warmup_args(args) -> argparse.Namespace:
    """The warm-up class: ``args.warm`` students walking every page at once, nothing else."""
    return argparse.Namespace(**{**vars(args), "students": args.warm, "ramp": 0.0, "scenario": "walk",
                                 "max_pages": None})


def lecturer_args(args) -> argparse.Namespace:
    """The lecturer: one session on the deep link alone (no photo), before the class scans the QR code."""
    return argparse.Namespace(**{**vars(args), "students": 1, "ramp": 0.0, "scenario": "walk", "max_pages": 0})


def others_args(args) -> argparse.Namespace:
    """The students who do not train: ``args.others`` of them on the deep link, at lecture pace."""
    return argparse.Namespace(**{**vars(args), "students": args.others, "scenario": "lecture", "max_pages": None,
                                 "seed": args.seed + 1})


def median_p95(r: dict) -> float | None:
    xs = sorted(v["p95"] for v in r["pages"].values() if v["p95"] is not None)
    return xs[len(xs) // 2] if xs else None


async def train_with_others(base: str, args, pids: list[int]) -> dict:
    """The train class while ``args.others`` students walk the pages, after the same walk unloaded."""
    oargs = others_args(args)
    alone = await run_class(base, oargs, pids, "others-unloaded")

    async def others_later():
        await asyncio.sleep(3.0)  # the trainers' clicks first, as in a room
        return await run_class(base, oargs, pids, "others-loaded")

    result, loaded = await asyncio.gather(run_class(base, args, pids, "target"), others_later())
    result["others_unloaded"], result["others_loaded"] = alone, loaded
    u, lo = median_p95(alone), median_p95(loaded)
    result["ratio_others_p95"] = round(lo / u, 2) if u and lo is not None else None
    worst = max(((k, v["p95"] / alone["pages"][k]["p95"]) for k, v in loaded["pages"].items()
                 if k in alone["pages"] and alone["pages"][k]["p95"]), key=lambda kv: kv[1], default=(None, None))
    result["worst_others_page"] = [worst[0], None if worst[1] is None else round(worst[1], 2)]
    # Pooled over all their page runs (n = students x pages): one page's p95 of 30 runs is its
    # second-slowest run, so the worst of 14 such figures moves a lot from one class to the next.
    u, lo = alone["all_runs"]["p95"], loaded["all_runs"]["p95"]
    result["ratio_others_p95_pooled"] = round(lo / u, 2) if u and lo is not None else None
    return result


async def before_class(base: str, args, pids: list[int]) -> None:
    if args.lecturer:
        await run_class(base, lecturer_args(args), pids, "lecturer")
    if args.warm:
        await run_class(base, warmup_args(args), pids, "warm-up")


async def amain(args) -> dict:
    servers: list[Server] = []
    try:
        if args.app:
            srv = Server(args.app, label="app")
            servers.append(srv)
            base, pids = await srv.start(), [srv.proc.pid, *args.server_pid]
        else:
            base, pids = args.url.rstrip("/"), args.server_pid
        await before_class(base, args, pids)
        if args.scenario == "train" and args.others:
            result = await train_with_others(base, args, pids)
        else:
            result = await run_class(base, args, pids, "target")
        result["server_log"] = str(servers[0].log) if args.app else None  # tracebacks of the exceptions
        result["client_loop"] = type(asyncio.get_running_loop()).__module__.split(".")[0]  # uvloop or asyncio
        result["second_class"] = await run_class(base, args, pids, "second") if args.second_class else None
        result["baseline"], result["ratio_median_page"], result["ratio_wall"] = None, None, None
        if args.app:
            servers.pop().stop()  # one class at a time: the target's server leaves before the baseline's
        if args.baseline:
            n = args.baseline_pages or len(result["page_list"]) or 1
            srv = Server(str(TRIVIAL_APP), env={"TRIVIAL_APP_PAGES": str(n)}, label="trivial")
            servers.append(srv)
            tbase = await srv.start()
            targs = argparse.Namespace(**{**vars(args), "model": None, "page": "", "train_page": ""})
            await before_class(tbase, targs, [srv.proc.pid])
            result["baseline"] = b = await run_class(tbase, targs, [srv.proc.pid], "baseline")
            if b["median_page_s"] and result["median_page_s"] is not None:
                result["ratio_median_page"] = round(result["median_page_s"] / b["median_page_s"], 2)
            if b["wall_s"]:
                result["ratio_wall"] = round(result["wall_s"] / b["wall_s"], 2)
        return result
    finally:
        for srv in servers:
            srv.stop()


def loop_factory(kind: str):
    """uvloop's event loop for ``auto`` when it is installed, else asyncio's own (None)."""
    if kind == "auto":
        try:
            import uvloop

            return uvloop.new_event_loop
        except ImportError:
            pass
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    try:
        with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
            result = runner.run(amain(args))
    except KeyboardInterrupt:
        print("interrupted: the servers this tool started are stopped", file=sys.stderr)
        return 130
    print_report(result, args.app or args.url, args)
    if result["server_log"]:
        print(f"server log (tracebacks): {result['server_log']}")
    if result.get("others_loaded"):
        print_report(result["others_unloaded"], f"{args.others} other students, alone", others_args(args))
        print_report(result["others_loaded"], f"the same {args.others}, while the class trains", others_args(args))
        print(f"\nothers' page p95, median over pages: {fmt(median_p95(result['others_loaded']))} s loaded vs "
              f"{fmt(median_p95(result['others_unloaded']))} s alone = {fmt(result['ratio_others_p95'])}x; "
              f"worst page {result['worst_others_page'][0]} {fmt(result['worst_others_page'][1])}x; "
              f"all their page runs pooled: {fmt(result['others_loaded']['all_runs']['p95'])} s vs "
              f"{fmt(result['others_unloaded']['all_runs']['p95'])} s = {fmt(result['ratio_others_p95_pooled'])}x")
    if result["second_class"]:
        print_report(result["second_class"], "second class, same server", args)
    if result["baseline"]:
        print_report(result["baseline"], f"baseline: trivial app, {len(result['baseline']['page_list'])} pages", args)
        print(f"\nratios vs trivial: median page run {fmt(result['ratio_median_page'])}x, "
              f"class wall time {fmt(result['ratio_wall'])}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
