"""The lecture hall's fair queue and byte-bounded shared cache (pages/_ui/heavy.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pages._ui import heavy
from pages._ui.heavy import FairGate, SharedLRU, nbytes


def test_gate_serves_in_arrival_order_and_reports_positions():
    gate = FairGate(1)
    gate.acquire()  # the first student holds the only slot
    order, positions = [], {}

    def student(i):
        gate.acquire(on_wait=lambda msg: positions.setdefault(i, msg))
        order.append(i)
        time.sleep(0.01)
        gate.release()

    threads = []
    for i in range(5):
        t = threading.Thread(target=student, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.05)  # arrive one after the other
    assert gate.waiting() == 5
    gate.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]
    assert "you are next" in positions[0] and "place 5 in line" in positions[4]


def test_gate_never_runs_more_than_its_slots():
    gate, running, peak, lock = FairGate(2), [0], [0], threading.Lock()

    def work():
        gate.acquire()
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        gate.release()

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert peak[0] == 2


def test_cache_is_bounded_by_bytes_and_evicts_least_recently_used():
    c = SharedLRU(max_bytes=3 * 1000 + 10)
    for k in "abc":
        c.get(k, lambda: np.zeros(1000, np.uint8))
    c.get("a", lambda: None)  # touch a: b is now the oldest
    c.get("d", lambda: np.zeros(1000, np.uint8))
    assert "b" not in c and all(k in c for k in "acd")
    assert c.bytes <= c.max_bytes and c.evictions == 1


def test_concurrent_requests_for_one_key_compute_once():
    calls, c = [], SharedLRU(10**9, FairGate(2))

    def compute():
        calls.append(1)
        time.sleep(0.2)
        return np.ones(10)

    out, waits = [], []
    threads = [threading.Thread(target=lambda: out.append(c.get("k", compute, waits.append))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(calls) == 1 and len(out) == 8 and all(o is out[0] for o in out)
    assert any("another student" in w for w in waits)


def test_a_failed_computation_is_not_cached_and_others_retry():
    c, n = SharedLRU(10**9), [0]

    def flaky():
        n[0] += 1
        if n[0] == 1:
            raise RuntimeError("boom")
        return 1

    try:
        c.get("k", flaky)
    except RuntimeError:
        pass
    assert "k" not in c
    assert c.get("k", flaky) == 1


def test_nbytes_counts_arrays_in_dataclasses():
    from dataclasses import dataclass

    @dataclass
    class A:
        x: np.ndarray
        y: tuple

    assert nbytes(A(np.zeros(100, np.float32), (np.zeros(10, np.uint8),))) >= 410


_FRAGMENT = """
import os, sys, numpy as np
sys.path.insert(0, {root!r})
if {fixed}:
    from pages._ui import heavy
    assert heavy.limit_malloc_arenas()
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
base = rss()
big, small = [], []
for i in range(60):  # an LRU of analyses: big arrays dropped in turn, small objects kept between them
    big.append(np.ones(2_000_000, np.float32))  # 8 MB
    small.append(np.ones(1000))
    if len(big) > 10:
        big.pop(0)
big.clear()
print(rss() - base)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists() or heavy._libc() is None, reason="glibc on Linux only")
def test_memory_freed_by_the_caches_goes_back_to_the_system():
    """glibc's default keeps big freed arrays in the heap once it has raised its mmap threshold; the
    server's setting hands them back (the class-after-class growth of the upload class)."""
    def kept(fixed: bool) -> float:
        code = _FRAGMENT.format(root=str(Path(__file__).resolve().parents[2]), fixed=fixed)
        return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert kept(False) > 40  # the default: the freed arrays still count against the server
    assert kept(True) < 10


_THREADS = """
import os, sys, threading
sys.path.insert(0, {root!r})
os.environ["VIT_WARMUP"] = "0"
os.environ["VIT_ANALYSIS_SLOTS"] = "2"
os.environ.pop("VIT_TORCH_THREADS", None)
import torch
torch.set_num_threads(4)  # what torch would pick on a 4-core server
import pages._ui  # the server's start-up (warmup) runs here
seen = []
t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))  # a later session's script thread
t.start(); t.join()
print(seen[0], torch.get_num_threads())
"""


def test_start_up_gives_each_analysis_slot_its_share_of_the_cores():
    """Two slots on four cores: two threads per pass, in every script thread started afterwards."""
    out = subprocess.run([sys.executable, "-c", _THREADS.format(root=str(Path(__file__).resolve().parents[2]))], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "4"})
    assert out.returncode == 0, out.stderr[-2000:]
    cores = os.cpu_count() or 1
    expected = max(1, cores // 2)
    assert out.stdout.split() == [str(expected), str(expected)]


def test_a_cache_sized_by_entries_keeps_the_newest_n():
    """heavy.FIGURES counts entries (a plotly figure's size hides inside it): the oldest goes first."""
    lru = SharedLRU(3, size=lambda _: 1)
    for k in "abcd":
        lru.get(k, lambda k=k: k.upper())
    lru.get("b", lambda: "never built")  # a hit moves it to the end
    lru.get("e", lambda: "E")
    assert [k for k in "abcde" if k in lru] == ["b", "d", "e"] and lru.evictions == 2


def test_entries_nobody_asks_for_are_released_after_their_idle_window():
    c = SharedLRU(max_bytes=10**6)
    for k in "abc":
        c.get(k, lambda: np.zeros(1000, np.uint8))
    t = time.monotonic()
    assert c.expire_idle(60, now=t + 30) == 0 and len(c) == 3  # all asked for within the window
    c.get("a", lambda: pytest.fail("a is cached"))  # a student still on the page asks again
    c._used["a"] = t + 50  # ... as if 50 s later
    assert c.expire_idle(60, keep=lambda k: k == "c", now=t + 100) == 1  # b went; a recent, c kept
    assert sorted(c._items) == ["a", "c"] and c.bytes == 2000
    assert c.expire_idle(60, now=t + 200) == 2 and len(c) == 0 and c.bytes == 0


def test_the_server_releases_a_class_s_analyses_but_keeps_the_gallery(monkeypatch):
    from pages._ui import cache, warmup
    from pages._ui.site import sample_names

    for name in ("ANALYSES", "RESULTS", "LIGHT", "FIGURES", "PICTURES"):  # only this test's entries
        monkeypatch.setattr(heavy, name, SharedLRU(10**6))
    gallery = cache.sample_bytes(sample_names()[0])[1]
    heavy.ANALYSES.get(("bundled:shapes-vit", gallery), lambda: np.zeros(10, np.uint8))
    heavy.ANALYSES.get(("bundled:shapes-vit", "f" * 64), lambda: np.zeros(10, np.uint8))  # a student's photo
    assert warmup.release_idle(60, now=time.monotonic() + 30) == 0
    assert warmup.release_idle(60, now=time.monotonic() + 61) >= 1
    assert list(heavy.ANALYSES._items) == [("bundled:shapes-vit", gallery)]


def test_the_warm_up_beside_the_first_sessions_does_not_freeze_their_objects(monkeypatch):
    """A page namespace is a cycle (its functions' globals); frozen, it was never collected, and it
    held the student's analysis. The warm-up a first page run starts must leave such cycles collectable."""
    import gc
    import weakref

    from pages._ui import cache, sidebar, warmup

    monkeypatch.setattr(warmup, "_STARTED", threading.Event())
    monkeypatch.setattr(warmup, "shortcut_lesson", lambda: None)
    monkeypatch.setattr(cache, "get_model_figures", lambda spec: None)
    monkeypatch.setattr(cache, "get_analysis", lambda spec, sha, data: None)
    monkeypatch.setattr(sidebar, "default_spec", lambda: "bundled:shapes-vit")
    monkeypatch.setattr(cache, "get_model", lambda spec: None)

    class Analysis:  # stands for the student's analysis
        pass

    page: dict = {"a": Analysis()}
    exec("def fragment():\n    return a\n", page)  # page["fragment"].__globals__ is page: a cycle
    alive = weakref.ref(page["a"])
    frozen_before = gc.get_freeze_count()
    try:
        warmup.precompute_gallery()  # as app.py's first run starts it: in the background
        deadline = time.monotonic() + 60
        while any(t.name == "vit-warmup" for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.05)
        del page
        gc.collect()
        assert alive() is None  # the student left: the namespace and its analysis are collected
    finally:
        if gc.get_freeze_count() > frozen_before:
            gc.unfreeze()


def test_a_closed_tab_s_pictures_leave_the_shared_caches(monkeypatch):
    """Results keyed on a photo go when every tab that sent it has closed; not before, not the gallery's."""
    from pages._ui import uploads

    for name in ("ANALYSES", "RESULTS", "LIGHT", "FIGURES", "PICTURES"):
        monkeypatch.setattr(heavy, name, SharedLRU(10**6))
    monkeypatch.setattr(uploads, "_BY_SESSION", {})
    a, b, c, g = "a" * 64, "b" * 64, "c" * 64, "9" * 64
    for sid, sha in (("s1", a), ("s2", a), ("s2", b), ("s3", c), ("s3", g)):
        uploads.note(sha, sid)
    value = lambda: np.zeros(10, np.uint8)  # noqa: E731
    for sha in (a, b, c, g):
        heavy.ANALYSES.get(("spec", sha), value)
        heavy.RESULTS.get(("wi_run", "spec", sha, (3, 4), "mean"), value)
        heavy.PICTURES.get(("att_query", (("spec", sha), 2, 0), "jpeg", None), value)  # nested, as cache.encoded keys
    heavy.FIGURES.get(("hist_timeline", ("All", "ViT", 16)), value)  # names no picture: stays

    connected = {"s1": False, "s2": True, "s3": False}
    assert uploads.release_closed(keep={g}, alive=lambda sid: None) == 0  # the server cannot say: keep all
    assert uploads.release_closed(keep={g}, alive=connected.get) == 3  # c's three; a is still on s2's screen
    assert {k[1] for k in heavy.ANALYSES._items} == {a, b, g}
    connected["s2"] = False
    assert uploads.release_closed(keep={g}, alive=connected.get) == 6
    assert list(heavy.ANALYSES._items) == [("spec", g)] and len(heavy.FIGURES) == 1
    assert heavy.ANALYSES.bytes == 10 and uploads.tracked() == 0


def test_the_heap_is_not_frozen_from_inside_a_page_run(monkeypatch):
    """Frozen while a session existed, later sessions' analyses outlived them (app.py's first run)."""
    import gc

    import streamlit.runtime.scriptrunner as sr

    from pages._ui import warmup

    before, threshold = gc.get_freeze_count(), gc.get_threshold()
    try:
        gc.set_threshold(700, *threshold[1:])
        monkeypatch.setattr(sr, "get_script_run_ctx", lambda *a, **k: object())  # a page run is going on
        assert warmup.freeze_heap() is False and gc.get_freeze_count() == before
        assert gc.get_threshold()[0] == 700  # nor is the collector retuned from a session
        monkeypatch.setattr(sr, "get_script_run_ctx", lambda *a, **k: None)  # a start-up hook: no session
        assert warmup.freeze_heap() is True
        assert gc.get_threshold() == (warmup.YOUNG_GC_THRESHOLD, *threshold[1:])
    finally:
        gc.set_threshold(*threshold)
