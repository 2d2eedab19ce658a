"""Lecture mode for every page: presentation mode, Previous/Next, share links with a QR code, handout.

``widgets.header`` calls ``lecture_chrome`` at the top of every page, so each page gets it without
code of its own. Presentation mode is a plain ``?present=1`` query parameter (not a bound widget:
bound booleans only accept true/false), which the toggle in Lecture tools and the Exit button set and clear.
Previous/Next keep ``present`` and the image/model parameters in the URL through
``st.switch_page(..., query_params=...)``.
"""
from __future__ import annotations

import functools
import io
import socket
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st
from streamlit.errors import StreamlitAPIException

from pages._ui import st_private
from pages._ui.site import PAGES, ROOT, existing_pages
from pages._ui.styles import CLICKER_JS, CSS_MARKER, PRESENT_CSS  # noqa: F401  (CSS_MARKER: tests)

PRESENT_PARAM = "present"
# Parameters that describe the talk's state (mode, image, model) rather than one page's view:
# these travel with Previous/Next; everything else belongs to the page being left.
KEEP_PARAMS = (PRESENT_PARAM, "model", "source", "sample")
_PAGE_FILES = {str((ROOT / p[0]).resolve()): p for p in PAGES}  # resolved once, not on every page run


# --- where are we ---------------------------------------------------------------------------


def is_present() -> bool:
    return str(st.query_params.get(PRESENT_PARAM, "")).lower() in ("1", "true", "yes", "on")


def talk() -> list[tuple[str, str, str, str]]:
    """The talk in order: PAGES whose file exists (as app.py registers them)."""
    return list(existing_pages())


def current_page() -> tuple[str, str, str, str] | None:
    """The PAGES entry of the page script that is running (found on the call stack)."""
    return st_private.calling_file(_PAGE_FILES)


def neighbours(page) -> tuple[tuple | None, tuple | None, int, int]:
    """(previous, next, 1-based position, count) of a page in the talk."""
    pages = talk()
    if page not in pages:
        return None, (pages[0] if pages else None), 0, len(pages)
    i = pages.index(page)
    return (pages[i - 1] if i > 0 else None), (pages[i + 1] if i + 1 < len(pages) else None), i + 1, len(pages)


def kept_params(present: bool = True) -> dict[str, str]:
    """The talk-wide query parameters, for Previous/Next."""
    out = {k: st.query_params[k] for k in KEEP_PARAMS if k in st.query_params}
    if present:
        out[PRESENT_PARAM] = "1"
    else:
        out.pop(PRESENT_PARAM, None)
    return out


# --- navigation -----------------------------------------------------------------------------


def go(page, present: bool = True) -> None:
    """Switch to a PAGES entry, keeping the talk's parameters in the URL."""
    params = {k: v for k, v in kept_params(present).items() if not st_private.query_param_is_bound(k)}
    target = str(ROOT / page[0])
    try:
        try:
            st.switch_page(target, query_params=params)
        except StreamlitAPIException as err:
            if "bound" not in str(err):
                raise
            st.switch_page(target, query_params={PRESENT_PARAM: "1"} if present else {})
    except StreamlitAPIException:  # a page run on its own (tests): there is no navigation
        st.warning(f"Open **{page[1]}** from the app (`streamlit run app.py`) to move between pages.")


def page_link(path: str, label: str, icon: str | None = None, query_params: dict | None = None,
              container=None) -> None:
    """st.page_link to another page of the app; a plain link when the page runs without app.py."""
    box = container if container is not None else st
    entry = next((p for p in PAGES if p[0] == path), None)
    if entry is None or not (ROOT / path).exists():
        box.caption(f"{label} (page not available in this installation)")
        return
    params = dict(query_params or {})
    params.update({k: v for k, v in kept_params(is_present()).items() if k not in params})
    try:
        box.page_link(str(ROOT / path), label=label, icon=icon or entry[3], query_params=params or None)
    except StreamlitAPIException:
        qs = ("?" + urlencode(params)) if params else ""
        box.markdown(f"[{label}](./{entry[2]}{qs})")


def _set_present(on: bool) -> None:
    if on:
        st.query_params[PRESENT_PARAM] = "1"
    elif PRESENT_PARAM in st.query_params:
        del st.query_params[PRESENT_PARAM]


def _toggle_changed() -> None:
    _set_present(bool(st.session_state.get("_present_toggle")))


def _request_go(page) -> None:
    """Button callback: remember where to go; the page script switches (callbacks cannot)."""
    if page is not None:
        st.session_state["_present_go"] = page[0]


def _pending_go() -> None:
    """Carry out a Previous/Next click (kept in session state, so an extra rerun cannot lose it)."""
    path = st.session_state.pop("_present_go", None)
    target = next((p for p in talk() if p[0] == path), None)
    if target is not None:
        go(target, present=is_present())


def nav_bar(page) -> None:
    """Presentation mode's top bar (sticky): Previous, where we are, the QR code, Exit, Next."""
    prev, nxt, pos, count = neighbours(page)
    with st.container(key="vx_navbar"):
        c_prev, c_mid, c_qr, c_exit, c_next = st.columns([4, 1.6, 1.7, 1.2, 4], vertical_alignment="center")
        with c_prev:
            st.button(f"◀ {prev[1]}" if prev else "◀ Start", key="_present_prev", disabled=prev is None,
                      width="stretch", on_click=_request_go, args=(prev,))
        c_mid.markdown(f"<div style='text-align:center;font-size:1rem;white-space:nowrap'><b>{pos} / {count}</b>"
                       "<div class='vx-keys' style='font-size:0.62rem;line-height:1.1'>PageDown scrolls, "
                       "then moves on · → ←</div></div>", unsafe_allow_html=True)
        with c_qr, st.container(key="_present_qr"):
            share_box(page)
        with c_exit:
            st.button("Exit", key="_present_exit", on_click=_set_present, args=(False,), width="stretch")
        with c_next:
            st.button(f"{nxt[1]} ▶" if nxt else "End ▶", key="_present_next", disabled=nxt is None,
                      width="stretch", type="primary", on_click=_request_go, args=(nxt,))


# --- sharing --------------------------------------------------------------------------------


def _lan_address() -> str | None:
    """This machine's address on the local network (no packet is sent), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            ip = s.getsockname()[0]
        return None if ip.startswith("127.") else ip
    except OSError:
        return None


def base_url(page) -> str:
    """The address of this page as the browser sees it (no query string)."""
    url = None
    try:
        url = st.context.url
    except Exception:  # not in a session (bare mode)
        url = None
    if url:
        return url
    host = None
    try:
        host = st.context.headers.get("Host")
    except Exception:
        host = None
    first = talk()[0] if talk() else None
    path = page[2] if page and page != first else ""  # the first page is the app's root (default=True)
    return f"http://{host or 'localhost:8501'}/{path}"


def share_params() -> dict[str, str | list[str]]:
    """This view's query parameters, without presentation mode (students get the normal app)."""
    out: dict[str, str | list[str]] = {}
    for k in st.query_params:
        if k == PRESENT_PARAM:
            continue
        vals = st.query_params.get_all(k)
        out[k] = vals if len(vals) > 1 else (vals[0] if vals else "")
    return out


def share_url(page, override_base: str = "") -> str:
    base = base_url(page)
    if override_base.strip():
        o = urlsplit(override_base.strip() if "://" in override_base else "http://" + override_base.strip())
        b = urlsplit(base)
        base = urlunsplit((o.scheme, o.netloc, b.path, "", ""))
    qs = urlencode(share_params(), doseq=True)
    return base + ("?" + qs if qs else "")


@functools.lru_cache(maxsize=256)
def qr_png(text: str, scale: int = 8) -> bytes:
    """A QR code (error correction M) as PNG bytes: black on white with the standard quiet zone."""
    import segno

    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="png", scale=scale, border=4, dark="#000000", light="#ffffff")
    return buf.getvalue()


def _is_local(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1", "0.0.0.0") or host.startswith("127.")


def share_box(page) -> None:
    """The top bar's "QR" popover in presentation mode: the link to this exact view (page, image,
    model, widget values) and its QR code.

    The popover's content is drawn only while it is open (``on_change="rerun"``): a class of 100 runs
    every page many times and almost never opens it, and the QR image, the link and the address box
    cost a media file and four elements per run otherwise. Opening it, or its refresh button, reruns
    the page, which also catches up with widgets in fragments that changed the URL since. Not a
    fragment itself: a fragment costs Streamlit ~0.4 ms on every run (it snapshots the page's
    cursors), on every page of every student, for a box the lecturer opens a few times a lecture.
    """
    pop = st.popover("QR", icon=":material/qr_code_2:", width="stretch", key="_share_open_1", on_change="rerun",
                     help="A link and QR code for the audience")
    if pop.open:
        with pop:
            share_view(page, large=True)


def share_view(page, large: bool = False) -> None:
    """The link to this view, its QR code and the box for the address the audience can reach."""
    st.button("Update to the current view", key=f"_share_refresh_{int(large)}", icon=":material/refresh:",
              type="tertiary")
    override = st.session_state.get("_share_base", "")
    url = share_url(page, override)
    st.image(qr_png(url, scale=12 if large else 6), width=420 if large else 220, caption="Scan to open this view")
    st.code(url, language=None, wrap_lines=True)
    if _is_local(url):
        lan = _lan_address()
        port = urlsplit(url).port or 8501
        hint = f" for example `http://{lan}:{port}`" if lan else ""
        st.caption("This address only works on this computer. For phones in the room, start the app with "
                   f"`--server.address 0.0.0.0` and type the address students can reach{hint}:")
    # The box exists only while the popover is open, and Streamlit drops a widget's state when it
    # is not drawn: the address is kept under a key of its own.
    st.text_input("Address for the audience (optional)", value=override, key="_share_base_in",
                  on_change=_keep_base, placeholder="http://192.168.1.20:8501",
                  help="Replaces the scheme, host and port of the link.")


def _keep_base() -> None:
    st.session_state["_share_base"] = st.session_state.get("_share_base_in", "")


# --- handout --------------------------------------------------------------------------------


def handout_button(ctx) -> None:
    """Download button that builds the HTML handout of the current image only when clicked."""

    def build() -> bytes:
        from vit_core.render import handout

        a = ctx.analysis()
        mf = ctx.figures()
        return handout.build_handout(a, mf, list(ctx.loaded.class_names), model_description=ctx.loaded.description,
                                     image_name=ctx.image_name).encode("utf-8")

    stem = Path(ctx.image_name).stem or "image"
    st.download_button("Handout of this image (HTML)", data=build, file_name=f"vit-handout-{stem}.html",
                        mime="text/html", key="_handout", icon=":material/description:", on_click="ignore",
                        width="stretch", help="One self-contained HTML file: your image through every step, "
                        "with captions and figures. Opens offline; prints well.")


# --- the whole thing, from header() -----------------------------------------------------------


LECTURE_TOOLS = "Lecture tools"


def lecture_tools(page, ctx=None) -> None:
    """The "Lecture tools" popover at the top right of every page: presentation mode, this view's
    link and QR code, and the handout of the current image.

    At the top of the page rather than the foot of the sidebar, where a popover has no room to open
    on a 720-pixel projector. Drawn only while open (``on_change="rerun"``), like the share box:
    closed, it is two elements on every run of every student instead of five (a heading, the
    toggle, the share popover, the handout button and its deferred download; BENCHMARKS "Lecture
    hall", seventh pass).
    """
    row = st.container(horizontal=True, horizontal_alignment="right", key="vx_tools")
    pop = row.popover(LECTURE_TOOLS, icon=":material/co_present:", key="_lecture_open", on_change="rerun",
                      help="Presentation mode for a projector, a link and QR code for this view, and a "
                           "handout of your image")
    if not pop.open:
        return
    with pop:
        st.session_state["_present_toggle"] = False  # drawn only outside presentation mode
        st.toggle("Presentation mode", key="_present_toggle", on_change=_toggle_changed,
                  help="Projector layout: no sidebar or toolbar, large high-contrast type, a sticky "
                       "Previous/Next bar. PageDown scrolls the page and moves on at its end (what a "
                       "clicker sends); → and ← change page at once. Same as adding ?present=1 to the URL.")
        st.markdown("**Share this view**")
        share_view(page)
        if ctx is not None:
            handout_button(ctx)


def lecture_chrome(ctx=None) -> None:
    """The lecture tools on every page; in presentation mode the CSS and the top bar instead (which
    has its own QR code and Exit)."""
    _pending_go()
    page = current_page()
    if is_present():
        st.html(PRESENT_CSS)
        st.html(CLICKER_JS, unsafe_allow_javascript=True)
        nav_bar(page)
    else:
        lecture_tools(page, ctx)
