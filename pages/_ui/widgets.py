"""Small widgets every page uses: the header (with the lecture chrome), PNG downloads, the exports
of a view (PNG, numbers and code), the code box."""
from __future__ import annotations

import functools
import inspect
import threading

import streamlit as st

from pages._ui import cache, present
from pages._ui.sidebar import CURRENT, Ctx, ensure_app_navigation
from pages._ui.site import SAMPLES
from vit_core.render import export, figures


def header(title: str, intro: str, ctx: Ctx | None = None) -> None:
    """Page title and introduction, plus the lecture tools every page shares (``present``):
    presentation mode (?present=1) with Previous/Next, the share-this-view link and QR code, and
    the handout download (which needs the page's Ctx: the one sidebar() returned in this run
    when not passed)."""
    ensure_app_navigation()
    present.lecture_chrome(ctx if ctx is not None else CURRENT.get())
    # The title is the introduction's first line: one element, not two, on every run (the page CSS
    # styles any h1 alike).
    st.markdown(f"# {title}" + (f"\n\n{intro}" if intro else ""))


EXPORTS_LABEL = "Download"


def row(n: int, gap: str = "medium", border: bool = False, align: str = "top") -> list:
    """``n`` places side by side (widgets, metrics, buttons): one horizontal container, not
    ``st.columns(n)``.

    Columns are ``n + 1`` layout elements, and every element is a message on every run of every
    student: a class walking the pages pays for each (BENCHMARKS "Lecture hall"). The row's
    elements share its width (``width="stretch"``) and wrap onto more lines on a narrow phone.
    ``align="bottom"`` lines up sliders whose labels wrap onto different numbers of lines.
    """
    place = st.container(horizontal=True, gap=gap, border=border, vertical_alignment=align)
    return [place] * n



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
    """'In the code': the vit_core source that computed this page, read once per process.

    Drawn only while open (``on_change="rerun"``): the source is kilobytes of text that every run
    of every student would otherwise send for an expander few of them open.
    """
    box = st.expander("In the code", expanded=False, key="_code_open", on_change="rerun")
    if not box.open:
        return
    with box:
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


def exports(key: str, filename: str, png=None, arrays=None, code: str = "", label: str = "Download PNG") -> None:
    """Take a view with you: one "Download" popover with its PNG, the numbers behind it as .npz and
    the Python code that recomputes them with vit_core.

    Everything is deferred: the popover's content is drawn only while it is open (a rerun when a
    student opens it), and the PNG is drawn and encoded and the arrays gathered and compressed only
    when a button in it is clicked (which does not rerun the page). Closed, a view's exports are one
    element: a page has up to six of them, and a class runs every page without opening one (the
    PNG button and its row beside the popover were two more elements, a widget among them, on
    every run of every student: BENCHMARKS "Lecture hall").

    Args:
        key: the PNG button's widget key; the .npz button's is ``key + "_npz"``, the popover's
            ``key + "_dc"``.
        filename: the downloads' name without extension (``.png`` and ``.npz`` are added).
        png: an (H, W, 3) uint8 array, a ``(build, *args)`` tuple drawn on click, or None (no PNG).
        arrays: a callable returning ``{name: array}`` (called on click), or such a dict.
        code: the runnable snippet (``vit_core.render.export.script``), or a callable returning it
            (called only while the popover is open).
        label: the PNG button's label.
    """
    what = "This picture as PNG, the numbers" if png is not None else "The numbers"
    pop = st.popover(EXPORTS_LABEL, icon=":material/download:", key=f"{key}_dc", on_change="rerun",
                     help=f"{what} behind it (.npz) and the code that recomputes them")
    if not pop.open:
        return
    with pop:
        if isinstance(png, tuple):
            png_later(*png, filename=f"{filename}.png", key=key, label=label)
        elif png is not None:
            png_button(png, f"{filename}.png", key=key, label=label)
        gather = arrays if callable(arrays) else lambda: arrays or {}
        st.download_button("Numbers (.npz)", lambda: export.to_npz(**gather()), file_name=f"{filename}.npz",
                           mime="application/octet-stream", key=f"{key}_npz", on_click="ignore")
        code = code() if callable(code) else code
        if code:
            st.code(code, language="python")


def image_path(ctx: Ctx) -> str:
    """The image as a code snippet opens it: the bundled sample's path (relative to the project
    root), the visitor's own file name, or a placeholder for a camera picture."""
    return _image_path(ctx.image_name, ctx.sha)


@functools.lru_cache(maxsize=1024)
def _image_path(name: str, sha: str) -> str:
    # Once per image: every export of every rerun asks. An upload may share a sample's name, so
    # the bytes decide, not the name.
    if (SAMPLES / name).is_file() and cache.sample_bytes(name)[1] == sha:
        return f"assets/samples/{name}"
    return name if "." in name and "/" not in name else "your_image.png"


def take_away(key: str, filename: str, recipe: export.Recipe, ctx: Ctx | None = None,
              label: str = "Download PNG") -> None:
    """``exports`` of a vit_core recipe (its picture, numbers and script) for the sidebar's model and
    image (``ctx``: the one sidebar() returned in this run when not passed)."""
    ctx = ctx if ctx is not None else CURRENT.get()
    exports(key, filename, recipe.png, recipe.numbers, lambda: export.script(recipe, ctx.spec, image_path(ctx)), label)
