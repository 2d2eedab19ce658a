"""The shared sidebar: model, image and device, chosen once per run and handed to the page as a Ctx.

Every page calls ``sidebar()`` itself (AppTest drops what app.py writes before ``pg.run()`` on
later reruns), then ``widgets.header()``.
"""
from __future__ import annotations

import contextvars
import functools
import time
from dataclasses import dataclass

import streamlit as st

from pages._ui import st_private, uploads
from pages._ui.cache import (analysis_ready, get_analysis, get_model, get_model_figures, image_problem,
                             model_status, sample_bytes)
from pages._ui.site import DEFAULT_SPEC, IMAGENET_DEFAULT, USER_MODELS, sample_names
from pages._ui.styles import BASE_CSS
from vit_core.analysis import explain
from vit_core.io import hub, images, loading
from vit_core.training import store as model_store

# Set by app.py. Streamlit serves the very first script run of a fresh server in its legacy
# "pages/ folder" mode (the page runs without app.py: wrong navigation, narrow layout), which
# breaks shared deep links; ensure_app_navigation() leaves that mode and reruns once so that
# app.py's st.navigation takes over.
APP_STARTED = False

# The Ctx of the script run in progress, for header(). Streamlit runs each script run in its own
# thread, and a new thread starts with an empty context, so sessions never see each other's.
CURRENT: contextvars.ContextVar["Ctx | None"] = contextvars.ContextVar("vx_ctx", default=None)


@dataclass
class Ctx:
    """What the sidebar chose, for the page to use."""

    spec: str
    loaded: loading.LoadedModel
    image_name: str
    image_bytes: bytes
    sha: str
    device: str

    def analysis(self) -> explain.Analysis:
        """The image's analysis; while it waits in the queue the page shows the position."""
        if analysis_ready(self.spec, self.sha):
            return get_analysis(self.spec, self.sha, self.image_bytes)
        box = st.empty()
        try:
            return get_analysis(self.spec, self.sha, self.image_bytes,
                                on_wait=lambda msg: box.info(msg, icon=":material/hourglass_top:"))
        finally:
            box.empty()

    def analysis_with_status(self) -> explain.Analysis:
        """The analysis, then a caption saying how long it took and where."""
        a = self.analysis()
        st.caption(f"Analysed in {a.seconds * 1000:.0f} ms on {self.device}")
        return a

    def figures(self) -> explain.ModelFigures:
        return get_model_figures(self.spec)

    def class_name(self, i: int) -> str:
        """Class ``i``'s name, or "class i" where the model carries fewer names than outputs."""
        return loading.class_name(self.loaded.class_names, i)


def model_choices() -> list[tuple[str, str]]:
    # Models trained here: the class run's for everyone, a visitor's own only in their session.
    owner = model_store.owner_of(st.session_state, create=False)
    return list(loading.CATALOG) + model_store.ModelStore(USER_MODELS).choices(owner)


def default_spec() -> str:
    """The bundled model, unless ImageNet weights are already cached on this machine."""
    # probed again every 10 s, not on every page run of every student (a few file checks each)
    return _default_spec_at(int(time.monotonic() // 10))


@functools.lru_cache(maxsize=1)
def _default_spec_at(_tick: int) -> str:
    try:
        if hub.catalog_cached(IMAGENET_DEFAULT.split(":", 1)[1]):  # a file check: no timm import
            return IMAGENET_DEFAULT
    except Exception:  # a status probe must never break the page
        pass
    return DEFAULT_SPEC


def _forget_if_cleared(widget_key: str, kept_key: str) -> None:
    """The visitor removed the file (or the picture) in the widget itself: stop reusing it.
    A widget that is merely redrawn on another page starts empty without calling this."""
    if st.session_state.get(widget_key) is None:
        st.session_state.pop(kept_key, None)


def _kept(kept_key: str, name: str, data: bytes) -> tuple[str, bytes, str]:
    """Keep a visitor's picture with its hash: hashing a 10 MB photo on every run costs ~20 ms."""
    old = st.session_state.get(kept_key)
    if old is None or old[1] is not data and old[1] != data:
        st.session_state[kept_key] = (name, data, images.image_sha256(data))
    return st.session_state[kept_key]


def _pick_image(bundled: bool) -> tuple[str, bytes, str, str]:
    """(name, bytes, SHA-256, source) of the image this run shows."""
    names = sample_names()
    source = st.sidebar.radio("Image source", ["Sample", "Upload", "Camera"], horizontal=True,
                              key="source", bind="query-params")
    kept = None
    # The widgets forget their file when another page draws them, so the picture itself is kept
    # in session state (one per visitor) and reused until the visitor replaces it.
    if source == "Upload":
        up = st.sidebar.file_uploader("Your image", type=None, key="upload", help=images.ACCEPTED_HELP,
                                      on_change=_forget_if_cleared, args=("upload", "_upload"))
        if up is not None:
            kept = _kept("_upload", up.name, up.getvalue())
        elif "_upload" in st.session_state:
            kept = st.session_state["_upload"]
            st.sidebar.caption(f"Showing your upload **{kept[0]}**; choose another file to replace it.")
    elif source == "Camera":
        shot = st.sidebar.camera_input("Take a picture", key="camera", on_change=_forget_if_cleared,
                                       args=("camera", "_camera"))
        if shot is not None:
            kept = _kept("_camera", "camera", shot.getvalue())
        elif "_camera" in st.session_state:
            kept = st.session_state["_camera"]
            st.sidebar.caption("Showing your last picture; take another to replace it.")
    if kept is not None:
        # Noted on every run, so that a tab that reconnects after its photo was released registers
        # it again: released from the shared caches once no open tab shows it (pages/_ui/uploads.py).
        uploads.note(kept[2])
        return kept[0], kept[1], kept[2], source.lower()
    if source != "Sample":
        # A reload, a shared link or a restarted server: the picture lived only in that browser
        # tab's session. Say so where the visitor looks, instead of silently showing a sample.
        st.warning(f"**No {'photo' if source == 'Upload' else 'picture'} here yet.** Pictures stay in "
                   "the browser tab that sent them, so after a reload, in a shared link or when the "
                   f"server restarts they are gone. {'Upload it' if source == 'Upload' else 'Take it'} "
                   "again in the sidebar; meanwhile this page shows a sample image.",
                   icon=":material/upload:")
    preferred = [n for n in names if n.startswith("shapes")] if bundled else [n for n in names if not n.startswith("shapes")]
    default = (preferred or names)[0]
    sample = st.sidebar.selectbox("Sample image", names, index=names.index(default), key="sample",
                                  bind="query-params")
    data, sha = sample_bytes(sample)
    return sample, data, sha, "sample"


def _photo_on_shapes_model() -> None:
    """A photo on the Shapes model gets one of six shape names: say so on the page, with the fix."""
    imagenet = model_status(IMAGENET_DEFAULT)
    fix = ("Pick **ViT-B/16 (ImageNet)** in the sidebar's Model box for real photo classes."
           if imagenet.state in ("cached", "downloadable") else
           "The ImageNet models are not on this machine and it is offline; try a Shapes sample image, "
           "or before the lecture run `python -m vit_core.io.prefetch " + IMAGENET_DEFAULT + "`.")
    st.info("**This model only knows shapes.** The bundled Shapes ViT was trained on ten drawn shapes "
            "(circle, ring, star, ...), so any photo is called one of those. The patches, embeddings and "
            "attention below are still the real computation. " + fix, icon=":material/category:")


def ensure_app_navigation() -> None:
    """Rerun once if this process has not run app.py yet (see APP_STARTED)."""
    global APP_STARTED
    if not APP_STARTED:
        APP_STARTED = True
        st_private.leave_legacy_pages_mode()
        st.rerun()


def sidebar() -> Ctx:
    """Draw the shared sidebar and return the chosen model and image (valid, decoded once)."""
    ensure_app_navigation()
    # The page-wide CSS rides in the heading's element: one element fewer on every run (BENCHMARKS
    # "Lecture hall"). A <style> block applies wherever it sits, the sidebar collapsed or hidden too.
    st.sidebar.markdown("### ViT Explainer" + BASE_CSS, unsafe_allow_html=True)
    choices = model_choices()
    labels = dict(choices)
    specs = [s for s, _ in choices]
    default = default_spec()
    spec = st.sidebar.selectbox("Model", specs, index=specs.index(default) if default in specs else 0,
                                format_func=lambda s: labels.get(s, s), key="model", bind="query-params")
    status = model_status(spec)
    status_line = (f"Status: **{status.state}**" + (f" · {status.size_mb:.0f} MB" if status.size_mb else "")
                   + (f" · {status.note}" if status.note and status.state not in ("bundled", "file") else ""))
    offered = status.state in ("downloadable", "unavailable")
    if offered:  # the status above its download button; otherwise in one caption with the model below
        st.sidebar.caption(status_line)
        spec = _offer_download(spec, status)
    try:
        loaded = get_model(spec)
    except (loading.ModelUnavailable, ValueError) as err:
        st.error(f"The model {spec} could not be loaded: {err}")
        if spec == DEFAULT_SPEC:
            st.stop()
        st.info("Showing the bundled Shapes ViT instead.")
        spec, loaded = DEFAULT_SPEC, get_model(DEFAULT_SPEC)
    device = _device_label()
    # One caption, not four: every element costs every student's run (see BENCHMARKS "Lecture hall").
    bundled_note = ("  \n\nThe bundled Shapes ViT was trained by this project and works offline. For "
                    "ImageNet predictions pick an ImageNet model and download it, or before a lecture run "
                    "`python -m vit_core.io.prefetch " + IMAGENET_DEFAULT + "`." if loaded.source == "bundled" else "")
    st.sidebar.caption(("" if offered else status_line + "  \n") + f"{loaded.description}  \nDevice: {device}"
                       + bundled_note)
    name, data, sha, source = _pick_image(loaded.source == "bundled")
    problem = image_problem(sha, data)
    if problem is not None:
        st.error(f"**{name}** could not be used: {problem}")
        name = sample_names()[0]
        st.info(f"Showing the sample image {name} instead.")
        (data, sha), source = sample_bytes(name), "sample"
    if loaded.source == "bundled" and (source != "sample" or not name.startswith("shapes")):
        _photo_on_shapes_model()
    ctx = Ctx(spec=spec, loaded=loaded, image_name=name, image_bytes=data, sha=sha, device=device)
    CURRENT.set(ctx)
    return ctx


@functools.cache
def _device_label() -> str:
    return loading.device_label()  # fixed for the process: the device, and the threads set at start-up


def _offer_download(spec: str, status) -> str:
    """Download button with a progress bar; until then the page runs on the bundled model."""
    if status.state == "downloadable":
        label = "Download weights" + (f" ({status.size_mb:.0f} MB)" if status.size_mb else "")
        if st.sidebar.button(label, key="download"):
            bar = st.sidebar.progress(0.0, text="Starting download…")
            try:
                loading.load_model(spec, progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))
                bar.progress(1.0, text="Downloaded")
                return spec
            except loading.ModelUnavailable as err:
                st.sidebar.error(str(err))
    else:
        st.sidebar.warning(status.note or "This model is not available offline.")
    st.sidebar.caption("Meanwhile the bundled Shapes ViT is shown.")
    return DEFAULT_SPEC
