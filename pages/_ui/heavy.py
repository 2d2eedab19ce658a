"""Heavy work served to a whole room: a fair queue in front of the cores, a cache bounded by bytes.

A class of 100 students reaches one server at once. Forward passes (an image's analysis, a
relevance backprop) run at most ``SLOTS`` at a time (one per core), first come first served; the
students behind them see their place in the queue. Results are shared by every session that asks
for the same key and kept in a least-recently-used cache bounded by bytes, not entries, so that
memory stays flat however many photos a class uploads. No Streamlit here: the caller passes a
callback that shows the queue position.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

WaitCallback = Callable[[str], None]


class FairGate:
    """At most ``slots`` holders at a time; waiters are served in arrival order (FIFO).

    A semaphore alone is not fair: under load a late arrival can overtake a student who has
    waited for seconds. The queue also gives each waiter a position to show.
    """

    def __init__(self, slots: int):
        self.slots = max(1, slots)
        self._cv = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()
        self._running = 0

    def waiting(self) -> int:
        with self._cv:
            return len(self._queue)

    def running(self) -> int:
        with self._cv:
            return self._running

    def acquire(self, on_wait: WaitCallback | None = None, poll: float = 0.5) -> None:
        """Block until this caller holds a slot, reporting its queue position while it waits."""
        ticket = object()
        with self._cv:
            self._queue.append(ticket)
            shown = None
            while not (self._running < self.slots and self._queue[0] is ticket):
                pos = self._queue.index(ticket) + 1
                if on_wait is not None and pos != shown:
                    shown = pos
                    self._cv.release()  # never call back into the UI while holding the lock
                    try:
                        on_wait(f"Queued for the model: place {pos} in line"
                                if pos > 1 else "Queued for the model: you are next")
                    finally:
                        self._cv.acquire()
                    continue
                self._cv.wait(poll)
            self._queue.popleft()
            self._running += 1
            self._cv.notify_all()

    def release(self) -> None:
        with self._cv:
            self._running -= 1
            self._cv.notify_all()


def nbytes(obj: Any) -> int:
    """Approximate memory held by a result: numpy arrays, tensors, bytes and dataclasses of them."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (bytes, bytearray, str)):  # str: data URLs, ASCII
        return len(obj)
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):  # a torch tensor
        return obj.element_size() * obj.nelement()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(nbytes(getattr(obj, f.name)) for f in dataclasses.fields(obj)) + 256
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(x) for x in obj) + 64
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values()) + 64
    return 64


class SharedLRU:
    """A process-wide cache of computed results, bounded by bytes, computing each key once.

    Sessions asking for a key that another session is computing wait for that result instead
    of computing it again; computations pass through ``gate``.
    """

    def __init__(self, max_bytes: int, gate: FairGate | None = None, size: Callable[[Any], int] = nbytes):
        self.max_bytes = max_bytes  # the bound on the sum of size(value) over the entries
        self.gate = gate
        self._size = size
        self._lock = threading.Lock()
        self._items: collections.OrderedDict[Hashable, tuple[Any, int]] = collections.OrderedDict()
        self._used: dict[Hashable, float] = {}  # monotonic time of each entry's last get
        self._inflight: dict[Hashable, threading.Event] = {}
        self._bytes = 0
        self.hits = self.misses = self.evictions = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(self, key: Hashable, compute: Callable[[], Any], on_wait: WaitCallback | None = None) -> Any:
        """The cached value of ``key``, computing it (once, through the gate) when missing."""
        while True:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    self._used[key] = time.monotonic()
                    self.hits += 1
                    return hit[0]
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    mine = True
                    self.misses += 1
                else:
                    mine = False
            if not mine:
                if on_wait is not None:
                    on_wait("Being computed for another student; it will be shared with you")
                event.wait()
                continue  # the owner stored it (or failed: then this session tries itself)
            try:
                if self.gate is not None:
                    self.gate.acquire(on_wait)
                try:
                    value = compute()
                finally:
                    if self.gate is not None:
                        self.gate.release()
                self._store(key, value)
                return value
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()

    def _store(self, key: Hashable, value: Any) -> None:
        size = self._size(value)
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            self._items[key] = (value, size)
            self._used[key] = time.monotonic()
            self._bytes += size
            freed = 0
            while self._bytes > self.max_bytes and len(self._items) > 1:
                old, (_, s) = self._items.popitem(last=False)
                self._used.pop(old, None)
                self._bytes -= s
                freed += s
                self.evictions += 1
        if freed:
            release_freed(freed)

    def expire_idle(self, idle_s: float, keep: Callable[[Hashable], bool] | None = None,
                    now: float | None = None) -> int:
        """Drops the entries nobody has asked for in ``idle_s`` seconds, except those ``keep`` names.

        A student's photo is looked at by that student alone: once the class has left, its analysis
        only holds memory that the next class needs (the byte bound alone kept a whole class's
        analyses until the next class pushed them out, so the second class's server held both).

        Returns:
            How many entries were dropped.
        """
        now = time.monotonic() if now is None else now
        return self.drop_where(lambda k: now - self._used.get(k, now) > idle_s and not (keep and keep(k)))

    def drop_where(self, pred: Callable[[Hashable], bool]) -> int:
        """Drops the entries whose key satisfies ``pred`` (called under the lock). Returns how many."""
        with self._lock:
            stale = [k for k in self._items if pred(k)]
            freed = 0
            for k in stale:
                freed += self._items.pop(k)[1]
                self._used.pop(k, None)
            self._bytes -= freed
        if freed:
            release_freed(freed)
        return len(stale)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used.clear()
            self._bytes = 0


# --- returning freed memory to the system -------------------------------------------------------
# glibc gives each thread that contends for the heap an arena of its own (up to 8 per core), and
# every student's session runs its script in a thread of its own: a class of 100 leaves many
# arenas, each holding freed analyses that the process never returns. Two arenas, and a trim
# after the cache has dropped a few hundred MB, keep the server's memory near what it holds.
_M_ARENA_MAX = -8
_TRIM_EVERY = 256 * 2**20
_freed_since_trim = 0
_trim_lock = threading.Lock()


def _libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return None


_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 2**20


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Caps glibc's malloc arenas and fixes its mmap threshold (a server setting: call once at start-up).

    glibc raises its mmap threshold after big blocks are freed (up to 32 MB), after which an
    analysis's 7-21 MB arrays come from the heap, where the holes they leave when evicted are not
    returned to the system: the server grew class after class. A fixed threshold keeps every block
    of 4 MB or more in its own mapping, handed back the moment it is freed.
    """
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas)
                and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_freed(freed: int) -> None:
    """Counts bytes the caches dropped; past ``_TRIM_EVERY``, hands free heap back (malloc_trim)."""
    global _freed_since_trim
    with _trim_lock:
        _freed_since_trim += freed
        if _freed_since_trim < _TRIM_EVERY:
            return
        _freed_since_trim = 0
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name, "")
    return int(v) if v.isdigit() and int(v) > 0 else default


# One gate for every forward or backward pass the pages trigger, one slot per core by default.
SLOTS = _env_int("VIT_ANALYSIS_SLOTS", os.cpu_count() or 1)
GATE = FairGate(SLOTS)
# Per-image analyses: a ViT-B/16 analysis holds ~21 MiB (attention of 12 layers in float16 10.7 MiB,
# tokens 7.5 MiB; q, k, v and float32 attention are recomputed per layer on request, into LIGHT).
# A class of 100 each on an own photo revisits its image on every page: the cache must hold the whole
# class (2,300 MB = 100 ViT-B analyses and the gallery), or each page recomputes what the last one
# evicted; and no more, or a second class's server holds the first's analyses besides its own.
ANALYSES = SharedLRU(_env_int("VIT_ANALYSIS_CACHE_MB", 2300) * 2**20, GATE)
# Smaller per-view results (relevance maps, interventions): bounded separately.
RESULTS = SharedLRU(_env_int("VIT_RESULT_CACHE_MB", 300) * 2**20, GATE)
# Results that take milliseconds (one layer's q, k, v): shared and bounded, but never queued
# behind forward passes.
LIGHT = SharedLRU(_env_int("VIT_LIGHT_CACHE_MB", 200) * 2**20)
# Figures and encoded pictures shared by every student (cache.chart, cache.encoded): plain dicts
# behind a lock, not st.cache_resource, whose per-call hashing and signature inspection was ~4% of
# every page run. Figures are counted by entries (their size hides inside plotly objects).
FIGURES = SharedLRU(_env_int("VIT_FIGURE_CACHE_ENTRIES", 512), size=lambda _: 1)
PICTURES = SharedLRU(_env_int("VIT_PICTURE_CACHE_MB", 128) * 2**20)
# Torch threads per script thread: the gate already runs one pass per core, so a pass that also
# spread over every core would oversubscribe them (2 passes x 2 OpenMP threads on 2 cores; OpenMP
# workers spin at their barriers while the other pass holds the core: a What if? click took 334 ms
# instead of 84 ms beside a 2-thread job). Every small op (rollout, masks) pays the same.
TORCH_THREADS = _env_int("VIT_TORCH_THREADS", max(1, (os.cpu_count() or 1) // SLOTS))


def set_torch_threads(n: int = TORCH_THREADS) -> int:
    """Sets torch's intra-op threads for this process (a server setting: call once at start-up).

    Every thread that runs torch ops later (each session's script thread) starts with this count.
    Returns the count now in effect.
    """
    import torch

    torch.set_num_threads(n)
    return torch.get_num_threads()

