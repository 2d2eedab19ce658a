"""Run N replicas of the app behind HAProxy on this machine, with sticky sessions.

    python deploy/cluster.py --replicas 2 --port 8600     # `make cluster`; Ctrl-C stops it all
    python deploy/cluster.py stop                         # `make cluster-stop`, from another shell
    python deploy/cluster.py render --replicas 2          # print the HAProxy config it would use

Every replica gets the same cookie secret (``STREAMLIT_SERVER_COOKIE_SECRET``, one generated per
start when unset) and the same ``VIT_MODELS_DIR`` (default ``<repo>/models``), so a model trained
on one replica is listed on all. The run directory (``<repo>/.cluster``) holds the rendered
HAProxy config, one log per process and ``state.json`` (pids and ports) for ``stop``. Tests use
:func:`start_cluster`.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUN_DIR = ROOT / ".cluster"
TEMPLATE = HERE / "haproxy.cfg.tmpl"
sys.path.insert(0, str(HERE))
import check_config  # noqa: E402  (a sibling script, not a package)

STREAMLIT_ARGS = ["--server.headless=true", "--server.fileWatcherType=none"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_config(ports: list[int], port: int, stats_port: int, sticky: bool = True,
                  host: str = "127.0.0.1", bind: str = "127.0.0.1", template: Path = TEMPLATE) -> str:
    """Fill the HAProxy template for replicas ``r1..rN`` listening on ``host:ports[i]``.

    Args:
        ports: One port per replica.
        port: Where HAProxy listens for students.
        stats_port: Where HAProxy serves its stats page (always on 127.0.0.1).
        sticky: False drops the affinity cookie. Only the tests use it, to prove that
            :mod:`check_config` refuses such a config.
        host: The replicas' address.
        bind: The address HAProxy listens on.
        template: The template file (dollar-sign placeholders: bind, port, stats_port, servers).

    Returns:
        The configuration text.
    """
    servers = "\n".join(f"    server r{i} {host}:{p} check" + (f" cookie r{i}" if sticky else "")
                        for i, p in enumerate(ports, 1))
    text = string.Template(Path(template).read_text()).substitute(
        bind=bind, port=port, stats_port=stats_port, servers=servers)
    if not sticky:
        text = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("cookie ")) + "\n"
    return text


def _get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode(errors="replace")


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; raise if ``proc`` exits or time runs out."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            if _get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f} s")


@dataclass
class Cluster:
    """A running cluster. ``replicas`` is [(pid, port)], in HAProxy's r1, r2, ... order."""

    url: str
    stats_url: str
    run_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    haproxy: subprocess.Popen | None = None

    @property
    def replicas(self) -> list[tuple[int, int]]:
        return [(p.pid, int(p.args[p.args.index("--server.port") + 1])) for p in self.procs]

    def server_states(self) -> dict[str, str]:
        """HAProxy's view of each replica, e.g. {"r1": "UP", "r2": "DOWN"}, from the stats CSV."""
        head, *rows = [ln.lstrip("# ").split(",") for ln in _get(self.stats_url + ";csv")[1].splitlines() if ln]
        col = head.index("status")
        return {r[1]: r[col] for r in rows if r[0] == "replicas" and r[1] not in ("FRONTEND", "BACKEND")}

    def kill_replica(self, i: int) -> None:
        """SIGKILL replica ``i`` (0-based) as a crash would; HAProxy notices by its health checks."""
        _kill(self.procs[i], signal.SIGKILL)

    def stop(self) -> None:
        """Stop HAProxy and every replica; remove the state file."""
        for p in ([self.haproxy] if self.haproxy else []) + self.procs:
            _kill(p, signal.SIGTERM)
        (self.run_dir / "state.json").unlink(missing_ok=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _kill(proc: subprocess.Popen, sig: int, grace_s: float = 10.0) -> None:
    """Signal ``proc``'s process group (each was started in its own), SIGKILL after ``grace_s``."""
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def start_cluster(replicas: int, port: int, sticky: bool = True, env: dict | None = None,
                  stats_port: int | None = None, run_dir: Path | str | None = None,
                  timeout_s: float = 120.0, bind: str = "127.0.0.1") -> Cluster:
    """Start ``replicas`` Streamlit servers and HAProxy in front of them on ``port``.

    The HAProxy config is rendered and checked before any process starts, so a non-sticky
    configuration raises :class:`check_config.ConfigError` with nothing left running.

    Args:
        replicas: Number of Streamlit servers.
        port: The students' port (HAProxy's).
        sticky: False only for the test that proves the check refuses it.
        env: Extra environment for the replicas (overrides ours).
        stats_port: HAProxy's stats port; a free one when None.
        run_dir: Config, logs and state.json; ``<repo>/.cluster`` when None.
        timeout_s: How long to wait for every replica and HAProxy to be healthy.
        bind: HAProxy's address for students (0.0.0.0 in a hall); replicas stay on 127.0.0.1.

    Returns:
        The running :class:`Cluster`; call ``stop()`` (or use it as a context manager).
    """
    run = Path(run_dir or RUN_DIR)
    ports, stats_port = [free_port() for _ in range(replicas)], stats_port or free_port()
    cfg = render_config(ports, port, stats_port, sticky=sticky, bind=bind)
    problems = check_config.check_haproxy(cfg)
    if problems:
        raise check_config.ConfigError("; ".join(problems))
    haproxy_bin = shutil.which(os.environ.get("HAPROXY", "haproxy"))
    if not haproxy_bin:
        raise RuntimeError("haproxy not found: `apt-get install haproxy` (.ci/run does it), or set HAPROXY")
    run.mkdir(parents=True, exist_ok=True)
    (run / "haproxy.cfg").write_text(cfg)
    subprocess.run([haproxy_bin, "-c", "-q", "-f", str(run / "haproxy.cfg")], check=True)
    shared = {"STREAMLIT_SERVER_COOKIE_SECRET": os.environ.get("STREAMLIT_SERVER_COOKIE_SECRET")
              or secrets.token_urlsafe(32), "PYTHONUNBUFFERED": "1",
              "VIT_MODELS_DIR": os.environ.get("VIT_MODELS_DIR") or str(ROOT / "models")}
    cluster = Cluster(url=f"http://127.0.0.1:{port}", stats_url=f"http://127.0.0.1:{stats_port}/haproxy?stats",
                      run_dir=run)
    try:
        for i, p in enumerate(ports, 1):
            with open(run / f"r{i}.log", "wb") as log:  # the child keeps its own descriptor
                cluster.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "streamlit", "run", "deploy/hall.py", *STREAMLIT_ARGS,
                     "--server.address", "127.0.0.1", "--server.port", str(p)],
                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, **shared, **(env or {})}))
        _write_state(cluster, port, stats_port)
        end = time.monotonic() + timeout_s
        for proc, p in zip(cluster.procs, ports):
            wait_healthy(f"http://127.0.0.1:{p}/_stcore/health", proc, end - time.monotonic())
        with open(run / "haproxy.log", "wb") as log:
            cluster.haproxy = subprocess.Popen([haproxy_bin, "-db", "-f", str(run / "haproxy.cfg")],
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _write_state(cluster, port, stats_port)
        wait_healthy(f"{cluster.url}/_stcore/health", cluster.haproxy, end - time.monotonic())
        while set(cluster.server_states().values()) != {"UP"}:  # rise 2: about 4 s after start
            if time.monotonic() > end:
                raise TimeoutError(f"HAProxy does not see every replica up: {cluster.server_states()}")
            time.sleep(0.5)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _write_state(cluster: Cluster, port: int, stats_port: int, manager_pid: int | None = None) -> None:
    state = {"port": port, "stats_port": stats_port, "url": cluster.url, "manager_pid": manager_pid,
             "replicas": [{"pid": pid, "port": p} for pid, p in cluster.replicas],
             "haproxy_pid": cluster.haproxy.pid if cluster.haproxy else None}
    (cluster.run_dir / "state.json").write_text(json.dumps(state, indent=2))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def _ours(state: dict) -> list[int]:
    """The state file's HAProxy and replica pids still running as such (a pid may have been reused)."""
    pids = [state["haproxy_pid"]] * bool(state["haproxy_pid"]) + [r["pid"] for r in state["replicas"]]
    return [pid for pid in pids if any(name in _cmdline(pid) for name in (b"streamlit", b"haproxy"))]


def stop_from_state(run_dir: Path | str | None = None) -> bool:
    """Stop a cluster that another process started, from its ``state.json``; False if none ran."""
    path = Path(run_dir or RUN_DIR) / "state.json"
    if not path.exists():
        print(f"no cluster running ({path} not found)")
        return False
    state = json.loads(path.read_text())
    manager = state.get("manager_pid")
    if manager and b"cluster.py" in _cmdline(manager):  # `make cluster` in another shell stops all itself
        os.kill(manager, signal.SIGTERM)
        end = time.monotonic() + 20
        while time.monotonic() < end and _cmdline(manager):
            time.sleep(0.2)
    for sig, grace_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):  # SIGKILL: a busy training step
        for pid in _ours(state):
            os.killpg(pid, sig)
        end = time.monotonic() + grace_s
        while time.monotonic() < end and _ours(state):
            time.sleep(0.2)
    path.unlink(missing_ok=True)
    print(f"stopped the cluster on {state['url']} ({len(state['replicas'])} replicas)")
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line: start (default) and wait for Ctrl-C, ``stop``, or ``render``."""
    ap = argparse.ArgumentParser(prog="python deploy/cluster.py", description=__doc__.split("\n")[0])
    ap.add_argument("command", nargs="?", default="start", choices=("start", "stop", "render"))
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--port", type=int, default=8600)
    ap.add_argument("--stats-port", type=int, default=None, help="default: PORT + 1")
    ap.add_argument("--run-dir", default=str(RUN_DIR))
    ap.add_argument("--bind", default="127.0.0.1", help="HAProxy's address; 0.0.0.0 to serve a hall")
    args = ap.parse_args(argv)
    stats_port = args.stats_port or args.port + 1
    if args.command == "stop":
        stop_from_state(args.run_dir)
        return 0
    if args.command == "render":
        print(render_config([8501 + i for i in range(args.replicas)], args.port, stats_port), end="")
        return 0
    state = Path(args.run_dir) / "state.json"
    if state.exists() and _ours(json.loads(state.read_text())):
        print(f"a cluster may be running already ({args.run_dir}/state.json): `make cluster-stop` first",
              file=sys.stderr)
        return 1
    t0 = time.monotonic()
    try:
        cluster = start_cluster(args.replicas, args.port, stats_port=stats_port, run_dir=args.run_dir, bind=args.bind)
    except check_config.ConfigError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 1
    _write_state(cluster, args.port, stats_port, manager_pid=os.getpid())
    print(f"ready in {time.monotonic() - t0:.0f} s: {cluster.url}   (stats: {cluster.stats_url})")
    for i, (pid, p) in enumerate(cluster.replicas, 1):
        print(f"  r{i}: pid {pid}, http://127.0.0.1:{p}   log {cluster.run_dir}/r{i}.log")
    print("Ctrl-C (or `make cluster-stop`) stops everything.", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill <pid>` stops cleanly too
    try:
        while cluster.haproxy.poll() is None:
            time.sleep(1)
        print(f"haproxy exited with {cluster.haproxy.returncode}; see {cluster.run_dir}/haproxy.log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()
        print("cluster stopped")


if __name__ == "__main__":
    sys.exit(main())
