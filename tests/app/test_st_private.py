"""Every private Streamlit internal the app relies on still exists (pages/_ui/st_private.py).

Each function there falls back quietly when an internal disappears, which would hide a broken
upgrade: these tests fail loudly instead.
"""
from __future__ import annotations

import inspect

from streamlit.testing.v1 import AppTest

from pages._ui import st_private


def test_pages_manager_flag_exists():
    from streamlit.runtime.pages_manager import PagesManager

    assert hasattr(PagesManager, "uses_pages_directory")
    assert st_private.leave_legacy_pages_mode() is True


def test_runtime_singleton_and_session_probe_exist():
    from streamlit.runtime import Runtime

    assert hasattr(Runtime, "_instance")
    assert callable(getattr(Runtime, "is_active_session", None))
    assert st_private.session_alive("no-such-session") is None  # no server in a unit test


def test_script_run_ctx_has_session_id_and_query_params_binding():
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    from streamlit.runtime.state.query_params import QueryParams

    assert callable(get_script_run_ctx)
    assert callable(getattr(QueryParams, "is_bound", None))


def test_the_internals_work_inside_a_real_script_run():
    def script():
        import streamlit as st

        from pages._ui import st_private as sp

        st.radio("source", ["a", "b"], key="src", bind="query-params")
        st.write(f"sid={len(sp.session_id())} bound={sp.query_param_is_bound('src')} "
                 f"free={sp.query_param_is_bound('nothing')} page={sp.calling_file({}) is None}")

    at = AppTest.from_function(script).run()
    assert not at.exception, [e.value for e in at.exception]
    text = at.markdown[0].value
    assert "bound=True" in text and "free=False" in text and "page=True" in text
    assert "sid=0" not in text


def test_calling_file_finds_the_caller():
    here = str(inspect.getfile(test_calling_file_finds_the_caller))
    from pathlib import Path

    assert st_private.calling_file({str(Path(here).resolve()): "me"}) == "me"


def test_fragment_rerun_is_false_in_a_full_run_and_safe_outside_one():
    from pages._ui import st_private

    assert st_private.fragment_rerun() is True  # no script run here: the safe answer

    def page():
        import streamlit as st

        from pages._ui import st_private as sp

        st.markdown(f"full run: {sp.fragment_rerun()}")

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(page).run()
    assert at.markdown[0].value == "full run: False"


def test_closed_sessions_past_their_window_are_dropped_and_freed():
    """Streamlit's session storage (its own TTL cache) forgets an expired closed session only on its
    next write; expire_closed_sessions drops it at once, so what it held can be freed."""
    import threading
    import time
    import weakref

    from streamlit.runtime.memory_session_storage import MemorySessionStorage
    from streamlit.runtime.websocket_session_manager import WebsocketSessionManager

    src = inspect.getsource(WebsocketSessionManager.__init__)
    assert "self._session_storage" in src and "self._storage_lock" in src  # the internals it reaches

    class Session:
        def __init__(self, k):
            self.id = f"s{k}"
            self.analysis = bytearray(1000)  # what a closed tab's fragments pin

    class Info:
        def __init__(self, k):
            self.session = Session(k)

    class Manager:
        _session_storage = MemorySessionStorage(ttl_seconds=1)
        _storage_lock = threading.Lock()

    infos = [Info(k) for k in range(3)]
    for info in infos:
        Manager._session_storage.save(info)
    alive = [weakref.ref(info.session) for info in infos]
    del infos, info
    assert st_private.expire_closed_sessions(Manager) == 0  # within the window: kept for reconnecting
    time.sleep(1.2)
    assert sum(r() is not None for r in alive) == 3  # expired, yet still held: nothing wrote since
    assert st_private.expire_closed_sessions(Manager) == 3
    assert sum(r() is not None for r in alive) == 0
    assert st_private.expire_closed_sessions() is None  # no server in a test: the quiet fallback


def _theme_message(populate):
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = ForwardMsg()
    ct = msg.new_session.custom_theme
    parts = (ct, ct.light, ct.dark, ct.sidebar, ct.light.sidebar, ct.dark.sidebar)
    names = ("", ".light", ".dark", ".sidebar", ".light.sidebar", ".dark.sidebar")
    for part, name in zip(parts, names):
        populate(part, "theme" + name)
    return msg


def test_theme_memo_sends_what_streamlit_builds_and_follows_a_reparsed_config():
    from streamlit import config
    from streamlit.runtime import app_session

    assert st_private.memoize_theme_messages() is True
    assert st_private.memoize_theme_messages() is True  # a second call does not wrap the memo again
    memo = app_session._populate_theme_msg
    build = memo.vx_build
    assert not getattr(build, "vx_memo", False)
    try:
        config.get_config_options(force_reparse=True)
        config.set_option("theme.primaryColor", "#123456")
        config.set_option("theme.sidebar.backgroundColor", "#eeeeee")
        first = _theme_message(memo)
        assert first == _theme_message(build)
        assert first.new_session.custom_theme.sidebar.background_color == "#eeeeee"
        assert not first.new_session.custom_theme.HasField("dark")  # unset sections stay unset
        assert _theme_message(memo) == first  # from the memo now
        config.get_config_options(force_reparse=True)  # config.toml changed: Streamlit parses it again
        config.set_option("theme.primaryColor", "#654321")
        again = _theme_message(memo)
        assert again.new_session.custom_theme.primary_color == "#654321"
        assert not again.new_session.custom_theme.HasField("sidebar")
        assert again == _theme_message(build)
    finally:
        config.get_config_options(force_reparse=True)
