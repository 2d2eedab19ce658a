"""Small widgets every page uses: the header (with the lecture chrome), PNG downloads, the code box."""
from __future__ import annotations

import functools
import inspect
import threading

import streamlit as st

from pages._ui import present
from pages._ui.sidebar import CURRENT, Ctx, ensure_app_navigation
from vit_core.render import figures


def header(title: str, intro: str, ctx: Ctx | None = None) -> None:
    """Page title and introduction, plus the lecture tools every page shares (``present``):
    presentation mode (?present=1) with Previous/Next, the share-this-view link and QR code, and
    the handout download (which needs the page's Ctx: the one sidebar() returned in this run
    when not passed)."""
    ensure_app_navigation()
    present.lecture_chrome(ctx if ctx is not None else CURRENT.get())
    st.title(title)
    st.markdown(intro)


def png_button(img, filename: str, key: str, label: str = "Download PNG") -> None:
    """A PNG download of the image array ``img``, encoded only when the button is clicked (a
    deferred download) rather than on every rerun: a 1000 px mosaic costs ~170 ms to encode.
    Clicking does not rerun the page."""
    st.download_button(label, lambda: figures.to_png(img), file_name=filename, mime="image/png", key=key,
                       on_click="ignore")


_SOURCE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=256)
def _source(obj) -> str:
    # One thread at a time, once per object: inspect.getsource parses the whole module with `ast`
    # for a class, and CPython 3.11's ast raised "AST constructor recursion depth mismatch" when
    # a class of students opened the Train page at once.
    with _SOURCE_LOCK:
        return inspect.getsource(obj)


def code_box(*objs) -> None:
    """'In the code': the vit_core source that computed this page, read once per process."""
    with st.expander("In the code", expanded=False):
        for obj in objs:
            st.caption(f"{obj.__module__}.{obj.__qualname__}")
            st.code(_source(obj), language="python")


def clamp_state(key: str, lo, hi) -> None:
    """Forget a remembered widget value outside this model's range (another model may be smaller)."""
    if key in st.session_state and not lo <= st.session_state[key] <= hi:
        del st.session_state[key]


def font_size() -> int:
    """The smallest text on a chart, in px: 24 in presentation mode (body text is ~23.5 px there),
    16 otherwise. Chart builders take it as ``font_size``; it belongs in every chart's cache key."""
    return 24 if present.is_present() else 16


def png_later(build, *args, filename: str, key: str, label: str = "Download PNG") -> None:
    """A PNG download of ``build(*args)``, drawn and encoded only when the button is clicked.

    For pictures a page shows as cached bytes (``cache.encoded``): the array itself is never
    needed on a normal run."""
    st.download_button(label, lambda: figures.to_png(build(*args)), file_name=filename, mime="image/png",
                       key=key, on_click="ignore")
