"""The st.Page list app.py hands to st.navigation, built once per process.

st.Page resolves and stats its file when it is made: for our 22 pages (14 shown, the default page's
second address, 7 old aliases) that was about 2 ms of every page run, 7% of a walking class's
server time. The pages never change while a server runs, so they are made once; each run gets
shallow copies, because st.navigation marks the page it returns as callable (``_can_be_called``),
a per-run flag that two sessions sharing one object would reset under each other.
"""
from __future__ import annotations

import copy
import threading

import streamlit as st

from pages._ui.site import ALIASES, PAGES, ROOT, existing_pages

_LOCK = threading.Lock()
_TEMPLATES: list | None = None


def _build() -> list:
    pages = [st.Page(str(ROOT / path), title=title, url_path=url if i else "index", icon=icon, default=(i == 0))
             for i, (path, title, url, icon) in enumerate(existing_pages())]
    # The first page lives at "/"; its navigation name must work as a URL too (/overview). Streamlit
    # serves the default page only at "/", so the same script is also registered, hidden, there.
    path, title, url, icon = PAGES[0]
    pages.append(st.Page(str(ROOT / path), title=title, url_path=url, icon=icon, visibility="hidden"))
    by_file = {p[0]: p for p in PAGES}
    pages += [st.Page(str(ROOT / f), title=by_file[f][1], url_path=alias, icon=by_file[f][3], visibility="hidden")
              for alias, f in ALIASES.items() if (ROOT / f).exists()]
    return pages


def pages() -> list:
    """Fresh copies of the app's pages for this run (made once per process, see the module doc)."""
    global _TEMPLATES
    if _TEMPLATES is None:
        with _LOCK:
            if _TEMPLATES is None:
                _TEMPLATES = _build()
    return [copy.copy(p) for p in _TEMPLATES]
