"""One class on one server against the same class on a 2-replica cluster, in one run; then a
replica killed in the middle of a class.

    python bench/cluster_class.py --students 100 [--replicas 2] [--json out.json]
    python bench/cluster_class.py --walk [--students 100]   # the hall's walk on N replicas vs the trivial app

Runs bench/classroom.py three times: (1) --url of a fresh `make cluster`-style cluster (HAProxy in
front of N replicas), (2) --app app.py (one server), the same scenario and students, and (3) a
paced class through a fresh cluster during which replica r1 is killed. Prints the wall-time ratio,
the replica split, and what the students of the killed replica saw.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy"))

from cluster import free_port, start_cluster  # noqa: E402  (deploy/cluster.py)

CLASSROOM = [sys.executable, str(ROOT / "bench" / "classroom.py")]


def run_class(args: list[str], out: Path) -> dict:
    proc = subprocess.run(CLASSROOM + args + ["--json", str(out)], cwd=ROOT, capture_output=True, text=True)
    print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
    return json.loads(out.read_text())


def brief(r: dict) -> dict:
    keys = ("students", "finished", "failed_sessions", "exceptions", "errors", "upload_failures",
            "reconnections", "replica_split", "wall_s", "median_page_s", "peak_rss_mb", "after_rss_mb")
    return {k: r.get(k) for k in keys}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=100)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--model", default="random:vit_base_patch16_224")
    p.add_argument("--kill-students", type=int, default=30)
    p.add_argument("--kill-after", type=float, default=40.0)
    p.add_argument("--walk", action="store_true",
                   help="only the walk (one deep link, all pages, no pause) on a fresh cluster, with the trivial "
                        "app's class in the same run (classroom.py --baseline)")
    p.add_argument("--json")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cluster-class-"))
    common = ["--students", str(a.students), "--ramp", "10", "--scenario", "upload", "--model", a.model,
              "--timeout", "900"]
    result: dict = {}
    if a.walk:
        with start_cluster(a.replicas, free_port(), run_dir=tmp / "walk") as c:
            pids = sum((["--server-pid", str(pid)] for pid, _ in c.replicas), [])
            r = run_class(["--url", c.url, "--students", str(a.students), "--ramp", "10", "--scenario", "walk",
                           "--query", "sample=shapes-star.png", "--baseline", "--timeout", "900", *pids],
                          tmp / "walk.json")
        result["walk"] = {**brief(r), "baseline_wall_s": (r.get("baseline") or {}).get("wall_s"),
                          "ratio_wall": r.get("ratio_wall")}
        return report(result, a.json)

    with start_cluster(a.replicas, free_port(), run_dir=tmp / "c1") as c:
        pids = [str(pid) for pid, _ in c.replicas]
        result["cluster"] = brief(run_class(["--url", c.url, *common, *sum((["--server-pid", x] for x in pids), [])],
                                            tmp / "cluster.json"))
    result["single"] = brief(run_class(["--app", "app.py", *common], tmp / "single.json"))
    if result["cluster"]["wall_s"]:
        result["speedup"] = round(result["single"]["wall_s"] / result["cluster"]["wall_s"], 2)

    # A replica dies mid-lecture: its students reconnect through the balancer and finish.
    with start_cluster(a.replicas, free_port(), run_dir=tmp / "c2") as c:
        states = {}

        def kill() -> None:
            time.sleep(a.kill_after)
            c.kill_replica(0)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30 and c.server_states().get("r1") == "UP":
                time.sleep(0.5)
            states["r1_down_after_s"] = round(time.monotonic() - t0, 1)
            states["states"] = c.server_states()

        threading.Thread(target=kill, daemon=True).start()
        r = run_class(["--url", c.url, "--students", str(a.kill_students), "--ramp", "5", "--scenario",
                       "lecture", "--pause-min", "3", "--pause-max", "6", "--timeout", "900"], tmp / "kill.json")
        result["kill"] = {**brief(r), **states}

    return report(result, a.json)


def report(result: dict, path: str | None) -> int:
    print(json.dumps(result, indent=2))
    if path:
        Path(path).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
