"""The shared sidebar: model, image and device, chosen once per run and handed to the page as a Ctx.

Every page calls ``sidebar()`` itself (AppTest drops what app.py writes before ``pg.run()`` on
later reruns), then ``widgets.header()``.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass

import streamlit as st

from pages._ui import st_private
from pages._ui.cache import get_analysis, get_model, get_model_figures
from pages._ui.site import DEFAULT_SPEC, IMAGENET_DEFAULT, SAMPLES, USER_MODELS, sample_names
from vit_core.analysis import explain
from vit_core.io import hub, images, loading

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
        return get_analysis(self.spec, self.sha, self.image_bytes)

    def analysis_with_status(self) -> explain.Analysis:
        """The analysis, inside a collapsed status box that then says how long it took and where."""
        with st.status("Analysing the image…", expanded=False) as status:
            a = self.analysis()
            status.update(label=f"Analysed in {a.seconds * 1000:.0f} ms on {self.device}", state="complete")
        return a

    def figures(self) -> explain.ModelFigures:
        return get_model_figures(self.spec)

    def class_name(self, i: int) -> str:
        """Class ``i``'s name, or "class i" where the model carries fewer names than outputs."""
        return loading.class_name(self.loaded.class_names, i)


def model_choices() -> list[tuple[str, str]]:
    choices = list(loading.CATALOG)
    if USER_MODELS.exists():
        choices += [(f"file:{p}", f"Trained here: {p.parent.name if p.stem == 'model' else p.stem}")
                    for p in loading.list_user_models(USER_MODELS)]
    return choices


def default_spec() -> str:
    """The bundled model, unless ImageNet weights are already cached on this machine."""
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


def _pick_image(bundled: bool) -> tuple[str, bytes]:
    names = sample_names()
    source = st.sidebar.radio("Image source", ["Sample", "Upload", "Camera"], horizontal=True,
                              key="source", bind="query-params")
    data, name = None, None
    # The widgets forget their file when another page draws them, so the picture itself is kept
    # in session state (one per visitor) and reused until the visitor replaces it.
    if source == "Upload":
        up = st.sidebar.file_uploader("Your image", type=None, key="upload", help=images.ACCEPTED_HELP,
                                      on_change=_forget_if_cleared, args=("upload", "_upload"))
        if up is not None:
            st.session_state["_upload"] = (up.name, up.getvalue())
        elif "_upload" in st.session_state:
            st.sidebar.caption(f"Showing your upload **{st.session_state['_upload'][0]}**; choose another "
                               "file to replace it.")
        name, data = st.session_state.get("_upload", (None, None))
    elif source == "Camera":
        shot = st.sidebar.camera_input("Take a picture", key="camera", on_change=_forget_if_cleared,
                                       args=("camera", "_camera"))
        if shot is not None:
            st.session_state["_camera"] = ("camera", shot.getvalue())
        elif "_camera" in st.session_state:
            st.sidebar.caption("Showing your last picture; take another to replace it.")
        name, data = st.session_state.get("_camera", (None, None))
    if data is None:
        preferred = [n for n in names if n.startswith("shapes")] if bundled else [n for n in names if not n.startswith("shapes")]
        default = (preferred or names)[0]
        sample = st.sidebar.selectbox("Sample image", names, index=names.index(default), key="sample",
                                      bind="query-params")
        name = sample
        data = (SAMPLES / sample).read_bytes()
    return name, data


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
    st.sidebar.markdown("### ViT Explainer")
    choices = model_choices()
    labels = dict(choices)
    specs = [s for s, _ in choices]
    default = default_spec()
    spec = st.sidebar.selectbox("Model", specs, index=specs.index(default) if default in specs else 0,
                                format_func=lambda s: labels.get(s, s), key="model", bind="query-params")
    status = loading.model_status(spec)
    st.sidebar.caption(f"Status: **{status.state}**" + (f" · {status.size_mb:.0f} MB" if status.size_mb else "")
                       + (f" · {status.note}" if status.note and status.state not in ("bundled", "file") else ""))
    if status.state in ("downloadable", "unavailable"):
        spec = _offer_download(spec, status)
    try:
        loaded = get_model(spec)
    except (loading.ModelUnavailable, ValueError) as err:
        st.error(f"The model {spec} could not be loaded: {err}")
        if spec == DEFAULT_SPEC:
            st.stop()
        st.info("Showing the bundled Shapes ViT instead.")
        spec, loaded = DEFAULT_SPEC, get_model(DEFAULT_SPEC)
    st.sidebar.caption(loaded.description)
    if loaded.source == "bundled":
        st.sidebar.info("Running the bundled Shapes ViT (trained by this project, works offline). "
                        "For ImageNet predictions pick an ImageNet model and download it, or before a "
                        "lecture run `python -m vit_core.io.prefetch " + IMAGENET_DEFAULT + "`.")
    name, data = _pick_image(loaded.source == "bundled")
    try:
        images.load_image(data)
    except images.ImageError as err:
        st.error(f"**{name}** could not be used: {err}")
        fallback = sample_names()[0]
        st.info(f"Showing the sample image {fallback} instead.")
        name, data = fallback, (SAMPLES / fallback).read_bytes()
    st.sidebar.caption(f"Device: {loading.device_label()}")
    ctx = Ctx(spec=spec, loaded=loaded, image_name=name, image_bytes=data,
              sha=images.image_sha256(data), device=loading.device_label())
    CURRENT.set(ctx)
    return ctx


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
