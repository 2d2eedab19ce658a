"""Every call into Streamlit's private internals, in one place, each with its fallback.

Streamlit offers no public API for these questions. Each function degrades to a safe answer
when an upgrade moves the internal; ``tests/app/test_st_private.py`` checks that every internal
still exists, so an upgrade that breaks one fails loudly in CI instead of silently in a lecture.
"""
from __future__ import annotations

import functools
import sys
import uuid
from pathlib import Path


def leave_legacy_pages_mode() -> bool:
    """Tell the pages manager that st.navigation (not the pages/ folder) drives navigation.

    Streamlit serves the very first script run of a fresh server in its legacy "pages/ folder"
    mode; st.navigation flips this flag itself, Streamlit's legacy runner does not.

    Returns:
        True when the flag was set, False when the internal is gone (the page then keeps the
        legacy layout for that one run).
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        return True
    except (ImportError, AttributeError):
        return False


def query_param_is_bound(key: str) -> bool:
    """Whether a query parameter belongs to a widget (``bind="query-params"``).

    Streamlit refuses to set bound parameters through st.switch_page; the widget's own state
    carries them. Fallback: False (the caller retries without the extra parameters).
    """
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        with get_script_run_ctx().session_state.query_params() as qp:
            return bool(qp.is_bound(key))
    except Exception:
        return False


def calling_file(candidates: dict[str, object]) -> object | None:
    """The value of ``candidates`` (keyed by resolved file path) whose file is on the call stack.

    Streamlit does not tell a helper which page script is running; the stack does.
    """
    frame = sys._getframe(1)
    while frame is not None:
        hit = candidates.get(_resolved(frame.f_code.co_filename))
        if hit is not None:
            return hit
        frame = frame.f_back
    return None


@functools.lru_cache(maxsize=1024)
def _resolved(filename: str) -> str:
    """A code object's file name as a resolved path, once per name (realpath stats every component:
    done for every frame of every page run, it was 1 ms of each)."""
    try:
        return str(Path(filename).resolve())
    except (OSError, ValueError):
        return ""


def session_id() -> str:
    """This browser session's id: Streamlit's own when running in a server, else a fresh uuid."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        rc = get_script_run_ctx()
        if rc is not None:
            return rc.session_id
    except ImportError:
        pass
    return uuid.uuid4().hex


def fragment_rerun() -> bool:
    """True while only a fragment reruns (a widget inside it changed). Assumed True when the run's
    context cannot be read: callers then take their ordinary, safe path."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        rc = get_script_run_ctx()
        return rc is None or bool(rc.fragment_ids_this_run)
    except (ImportError, AttributeError):
        return True


def session_alive(sid: str) -> bool | None:
    """True/False when this server knows whether session ``sid`` is connected; None when it cannot say."""
    try:
        from streamlit.runtime import Runtime

        rt = Runtime._instance
        if type(rt) is not Runtime:  # none, or AppTest's mock
            return None
        return rt.is_active_session(sid) is True
    except Exception:
        return None


def expire_closed_sessions(manager=None) -> int | None:
    """Forget closed tabs' sessions whose reconnect window (``server.disconnectedSessionTTL``) is over.

    Streamlit keeps a closed tab's session in a TTL cache that only drops expired entries on its
    next write, i.e. when another tab closes. Until then each keeps its fragment storage, whose
    fragments are page functions whose globals hold that student's analysis: a second class arriving
    after the first pinned ~1.2 GB of the first class's analyses (BENCHMARKS "Lecture hall").

    Returns:
        How many closed sessions were dropped, or None when the internal is gone.
    """
    try:
        if manager is None:
            from streamlit import runtime

            manager = runtime.get_instance()._session_mgr
        storage = manager._session_storage
        with manager._storage_lock:
            return len(storage._cache.expire())
    except Exception:
        return None


def session_count() -> int | None:
    """How many sessions this server holds (connected, or closed within their reconnect window);
    None when it cannot say (no server, or the internal is gone)."""
    try:
        from streamlit import runtime

        return len(runtime.get_instance()._session_mgr.list_sessions())
    except Exception:
        return None


def memoize_theme_messages() -> bool:
    """Build the theme part of Streamlit's new-session message once per parsed config.

    Streamlit sends a new-session message at the start of every script run, and rebuilds its six
    theme sections from the config options each time: 0.48 ms of every page run of every student,
    on the server's event loop (2.7% of a walking class's server time, BENCHMARKS "Lecture hall").
    The config only changes when Streamlit parses it again, which replaces its options dict: the
    memo is keyed on that dict, so a changed config.toml is still picked up.

    Returns:
        True when the memo is in place (or already was), False when the internal is gone (Streamlit
        then keeps building the sections itself).
    """
    try:
        from streamlit import config
        from streamlit.runtime import app_session

        build = app_session._populate_theme_msg
        if getattr(build, "vx_memo", False):
            return True
        memo: dict[str, tuple[object, object, bool]] = {}  # one assignment per entry: no lock needed

        def populate(msg, section: str = "theme") -> None:
            options = config._config_options
            hit = memo.get(section)
            if hit is None or hit[0] is not options:
                template = type(msg)()
                build(template, section)
                memo[section] = hit = (options, template, bool(template.ListFields()))
            if hit[2]:  # an unset section stays unset: merging an empty one would mark it present
                msg.MergeFrom(hit[1])

        populate.vx_memo = True
        populate.vx_build = build
        app_session._populate_theme_msg = populate
        return True
    except (ImportError, AttributeError):
        return False
