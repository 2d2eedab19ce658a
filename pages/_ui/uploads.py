"""Whose pictures the shared caches hold, so that a closed tab's are released at once.

A student's photo is looked at by that student alone. Its analysis (21 MB on ViT-B/16) and every
result keyed on it stayed in the shared caches until they had been idle for a minute, so a second
class arriving shortly after the first met a server still holding the first class's photos
(BENCHMARKS "Lecture hall": second class +20%). The sidebar notes each upload with its session;
the housekeeping thread (``warmup``) releases the pictures of sessions that are no longer
connected, unless a connected session shows the same picture. A student whose tab reconnects
later has the picture analysed again, with the place in the queue shown.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from pages._ui import heavy, st_private

_LOCK = threading.Lock()
_BY_SESSION: dict[str, set[str]] = {}  # session id -> SHA-256 of the pictures it sent


def note(sha: str, sid: str | None = None) -> None:
    """Records that this run's session (or ``sid``) shows its own picture ``sha``."""
    sid = sid if sid is not None else st_private.session_id()
    if sid:
        with _LOCK:
            _BY_SESSION.setdefault(sid, set()).add(sha)


def mentions(key: Hashable, shas: set[str]) -> bool:
    """Whether a cache key (a tuple, possibly nested) names one of ``shas``."""
    if isinstance(key, str):
        return key in shas
    if isinstance(key, tuple):
        return any(mentions(k, shas) for k in key)
    return False


def release_closed(keep: set[str] = frozenset(),
                   alive: Callable[[str], bool | None] = st_private.session_alive) -> int:
    """Drops every shared result keyed on a picture that only closed sessions sent.

    Args:
        keep: Pictures never released (the gallery's, which every lecture link opens on).
        alive: True/False whether a session is connected; None when the server cannot say
            (then nothing is released).

    Returns:
        How many cache entries were dropped.
    """
    with _LOCK:
        state = {sid: alive(sid) for sid in _BY_SESSION}
        closed = [sid for sid, ok in state.items() if ok is False]
        if not closed:
            return 0
        kept = set().union(*(shas for sid, shas in _BY_SESSION.items() if state[sid] is not False))
        gone = set().union(*(_BY_SESSION.pop(sid) for sid in closed)) - kept - set(keep)
    if not gone:
        return 0
    return sum(c.drop_where(lambda key: mentions(key, gone))
               for c in (heavy.ANALYSES, heavy.RESULTS, heavy.LIGHT, heavy.FIGURES, heavy.PICTURES))


def tracked() -> int:
    """How many sessions have pictures noted (for tests and the server log)."""
    with _LOCK:
        return len(_BY_SESSION)
