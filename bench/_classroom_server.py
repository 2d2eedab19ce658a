"""Servers and memory for bench/classroom.py: start a Streamlit app on a free port, sample RSS.

A server started here runs in its own process group, so that stopping it also stops whatever it
spawned (training workers); ``stop`` is safe to call twice and is also registered with atexit.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _classroom_http import CookieJar, http

try:
    import psutil
except ImportError:  # not a dependency of the app: /proc does the same on Linux
    psutil = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run SCRIPT`` on a free localhost port, headless, without a file watcher."""

    def __init__(self, script: str, env: dict | None = None, label: str = "app") -> None:
        self.script, self.env, self.label = script, env or {}, label
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.log = Path(tempfile.gettempdir()) / f"classroom-{label}-{os.getpid()}.log"

    async def start(self, timeout: float = 120) -> str:
        """Start the server and wait until ``/_stcore/health`` says ok.

        Returns:
            The base URL, e.g. ``http://127.0.0.1:PORT``.
        """
        port = free_port()
        cmd = [sys.executable, "-m", "streamlit", "run", self.script, "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless=true", "--server.fileWatcherType=none",
               "--browser.gatherUsageStats=false",
               # The app's own config may redact exceptions; the report wants their text.
               "--client.showErrorDetails=full"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        atexit.register(self.stop)
        self.url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + timeout
        while True:
            try:
                status, body = await http(self.url + "/_stcore/health", CookieJar(), timeout=5)
                if status == 200 and body.strip() == b"ok":
                    return self.url
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > end:
                tail = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"{self.script} did not start (log {self.log}):\n{tail}")
            await asyncio.sleep(0.3)

    def stop(self) -> None:
        """Stop the server and its process group: SIGTERM, then SIGKILL after 10 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # stragglers of the group (a worker that ignored SIGTERM)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _vmrss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rss_mb(pids: list[int]) -> float:
    """Resident memory of ``pids`` and all their descendants, in MB (MiB)."""
    if psutil is not None:
        total = 0
        for pid in pids:
            try:
                p = psutil.Process(pid)
                procs = [p, *p.children(recursive=True)]
            except psutil.Error:
                continue
            for q in procs:
                try:
                    total += q.memory_info().rss
                except psutil.Error:
                    pass
        return total / 2 ** 20
    kids = _children_map()
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += kids.get(pid, [])
    return sum(_vmrss_kb(p) for p in seen) / 1024


class RssSampler:
    """Samples ``rss_mb(pids)`` every ``period`` seconds in the background; keeps the peak."""

    def __init__(self, pids: list[int], period: float = 0.5) -> None:
        self.pids, self.period = pids, period
        self.peak = 0.0
        self.last = 0.0
        self._task: asyncio.Task | None = None

    def sample(self) -> float:
        self.last = rss_mb(self.pids) if self.pids else 0.0
        self.peak = max(self.peak, self.last)
        return self.last

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.period)

    def start(self) -> None:
        if self.pids:
            self.sample()
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
