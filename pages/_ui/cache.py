"""Every Streamlit cache of the app, in one module: what is computed once and shared by all.

Keys are (model spec, image SHA-256, view parameters); the heavy objects ride along unhashed
(leading underscore) so that Streamlit never hashes image bytes or tensors itself (its sampling
hash confuses near-identical images).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from pages._ui import heavy, st_private
from pages._ui.site import SAMPLES
from vit_core import cnn
from vit_core.analysis import attention_views, embeddings, explain, maps
from vit_core.data import vision
from vit_core.io import images, loading
from vit_core.model import ViTConfig, count_params
from vit_core.render import drawing, figures


# --- models and per-image analyses --------------------------------------------------------------
# The per-run look-ups below call their cached function with keyword arguments: for positional
# ones Streamlit inspects the function's signature on every call to learn the argument's name
# (a few % of every page run, measured with py-spy under a class).
@st.cache_resource(show_spinner=False, max_entries=6)
def _model(spec: str) -> loading.LoadedModel:
    loaded = loading.load_model(spec)
    if torch.cuda.is_available():
        loaded.model.to("cuda")
    return loaded


def get_model(spec: str) -> loading.LoadedModel:
    """One model per spec, shared by every session (eval mode; nothing per-call stored on it)."""
    return _model(spec=spec)


@st.cache_resource(show_spinner=False, max_entries=6)
def _model_figures(spec: str) -> explain.ModelFigures:
    return explain.model_figures(get_model(spec).model)


def get_model_figures(spec: str) -> explain.ModelFigures:
    """The image-independent figures of a model (position similarity, patch filters), once per spec."""
    return _model_figures(spec=spec)


def get_analysis(spec: str, sha: str, data: bytes, on_wait: heavy.WaitCallback | None = None) -> explain.Analysis:
    """The analysis of image ``data`` (SHA-256 ``sha``) on model ``spec``: computed once through
    the fair queue, then shared by every session until the byte-bounded cache evicts it."""
    def compute() -> explain.Analysis:
        loaded = get_model(spec)
        return explain.analyze(loaded.model, loaded.transform, loaded.data_config, images.load_image(data))
    return heavy.ANALYSES.get((spec, sha), compute, on_wait)


def analysis_ready(spec: str, sha: str) -> bool:
    return (spec, sha) in heavy.ANALYSES


def get_relevance(spec: str, sha: str, target: int, data: bytes) -> np.ndarray:
    """Chefer et al. relevance (gh, gw) for one class: a backward pass, through the fair queue
    (the waiting student sees the place in line), then shared."""
    def compute() -> np.ndarray:
        loaded = get_model(spec)
        x = loaded.transform(images.load_image(data)).unsqueeze(0)  # (1, 3, H, W)
        x = x.to(next(loaded.model.parameters()).device)
        return maps.class_relevance(loaded.model, x, target).numpy()
    return gated(("relevance", spec, sha, target), compute)


def has_relevance(spec: str, sha: str, target: int) -> bool:
    return ("relevance", spec, sha, target) in heavy.RESULTS


# A backward pass through a model this large takes about a second on a 2-core CPU: on request only.
RELEVANCE_ON_REQUEST_PARAMS = 20_000_000


@st.cache_resource(show_spinner=False, max_entries=16)
def param_count(spec: str) -> int:
    return count_params(get_model(spec).model)


# --- heavy work keyed on a student's image: the fair queue, a byte-bounded cache ------------------
def gated(key: tuple, compute, cache: heavy.SharedLRU | None = None):
    """``compute()`` once per key through the fair queue; a waiting student sees the position."""
    cache = cache or heavy.RESULTS
    if key in cache:
        return cache.get(key, compute)
    box: dict = {}

    def on_wait(msg: str) -> None:
        if "b" not in box:
            box["b"] = st.empty()
        box["b"].info(msg, icon=":material/hourglass_top:")
    try:
        return cache.get(key, compute, on_wait)
    finally:
        if "b" in box:
            box["b"].empty()


# --- the sidebar's per-run questions, answered once -------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=64)
def _sample_bytes(name: str) -> tuple[bytes, str]:
    data = (SAMPLES / name).read_bytes()
    return data, images.image_sha256(data)


def sample_bytes(name: str) -> tuple[bytes, str]:
    """A bundled sample's bytes and SHA-256, read from disk once."""
    return _sample_bytes(name=name)


@st.cache_resource(show_spinner=False, max_entries=1024)
def _image_problem(sha: str, _data: bytes) -> str | None:
    try:
        images.load_image(_data)
        return None
    except images.ImageError as err:
        return str(err)


def image_problem(sha: str, data: bytes) -> str | None:
    """Why image ``data`` cannot be used (None when it can), decoded once per distinct image."""
    return _image_problem(sha=sha, _data=data)


@st.cache_data(show_spinner=False, ttl=20, max_entries=64)
def _model_status(spec: str) -> loading.ModelStatus:
    return loading.model_status(spec)


def model_status(spec: str) -> loading.ModelStatus:
    """Whether a model is bundled, cached, downloadable or unavailable; re-asked every 20 s."""
    return _model_status(spec=spec)


# --- attention views ----------------------------------------------------------------------------
def layer_qkv(spec: str, sha: str, layer: int, _a: explain.Analysis) -> explain.QKV:
    """Layer ``layer``'s (q, k, v) of image ``sha`` on model ``spec``, each (h, T, hd).

    The analysis does not keep them (3 x 6.9 MB per ViT-B/16 image): recomputed from the layer's
    input tokens (one LayerNorm and one linear, ~30 ms for ViT-B/16) once per (spec, sha, layer),
    then shared by every student on that layer (1.8 MB). Not through the fair queue: behind a class's
    uploads it waited a minute for 30 ms of work.
    """
    def compute() -> explain.QKV:
        return explain.layer_qkv(get_model(spec).model, _a, layer)
    return heavy.LIGHT.get(("qkv", spec, sha, layer), compute)


def layer_attention(spec: str, sha: str, layer: int, _a: explain.Analysis) -> np.ndarray:
    """Layer ``layer``'s own attention (h, T, T) in float32, as the trace had it (the analysis keeps
    float16): recomputed once per (spec, sha, layer) for the pages that compare it with a
    recomputation from q and k, and shared (1.9 MB for ViT-B/16). Unqueued, as ``layer_qkv``."""
    def compute() -> np.ndarray:
        return explain.layer_attention(get_model(spec).model, _a, layer)
    return heavy.LIGHT.get(("attn", spec, sha, layer), compute)


def derived(kind: str, key: tuple, compute: Callable, *args, **kwargs):
    """``compute(*args, **kwargs)``: a small result every student of the same view shares (kept while asked for).

    ``key`` must name everything the result depends on (model spec, image SHA-256, view
    parameters); the arguments themselves are not hashed.
    """
    return heavy.LIGHT.get((kind,) + tuple(key), lambda: compute(*args, **kwargs))


def resized_positions(spec: str, grid: tuple[int, int]) -> tuple[np.ndarray, dict]:
    """Model ``spec``'s position similarity resampled to ``grid`` (N', gh', gw') and its neighbour-vs-far
    summary: the same for every student on that model and size, so computed once, not per run."""
    def compute() -> tuple[np.ndarray, dict]:
        sim = embeddings.resized_similarity(get_model(spec).model, grid)
        return sim, embeddings.neighbour_vs_far(sim, far=5)
    return heavy.LIGHT.get(("pos_resized", spec, tuple(grid)), compute)


@st.cache_resource(show_spinner=False, max_entries=32)
def rollout(spec: str, sha: str, fusion: str, discard: float, _a):
    return explain.rollout_with(_a, fusion, discard)  # (L, T, T)


@st.cache_resource(show_spinner=False, max_entries=32)
def cls_mosaic(spec: str, sha: str, cmap: str, alpha: float, tile: int, _a):
    """The layers x heads [CLS] mosaic (144 overlays for ViT-B), drawn once per view.

    Returns the full-size mosaic (for the download), JPEG bytes already at the width shown (so
    Streamlit neither resizes nor re-encodes it on each rerun) and that width: 680 px tall fits
    a 720p screen.
    """
    cls = attention_views.cls_maps(_a)  # (L, h, gh, gw)
    mos = drawing.labelled_mosaic(drawing.overlay_tiles(_a.image, cls, cmap, alpha, tile=tile))
    width = int(min(1400, 680 * mos.shape[1] / mos.shape[0], mos.shape[1]))
    return mos, figures.to_jpeg(mos, width), width


@st.cache_resource(show_spinner=False, max_entries=32)
def distances(spec: str, sha: str, renorm: bool, _a):
    return attention_views.distances(_a, renorm)  # (L, h)


@st.cache_resource(show_spinner=False, max_entries=32)
def distance_chart(spec: str, sha: str, renorm: bool, _a):
    """Built once per view (plotly figures cost ~40 ms to build); only read afterwards."""
    return figures.distance_scatter(distances(spec, sha, renorm, _a),
                                    f"Mean attention distance, this image ({_a.image.shape[0]} px across)")


# --- figures and encoded images, shared by every student looking at the same view --------------
def chart(kind: str, key: tuple, build: Callable[..., go.Figure], *args, **kwargs) -> go.Figure:
    """``build(*args, **kwargs)``, built once per (kind, key) and shared by every session.

    ``key`` must name everything the figure depends on (model spec, image SHA-256, view
    parameters): the arguments themselves are not hashed. Plotly figures cost 10-100 ms to
    build, which a class of 100 would otherwise pay on every page run.
    """
    def make() -> go.Figure:
        fig = build(*args, **kwargs)
        fig._vit_key = (kind, key)  # lets plotly_chart replay it (underscore: plotly allows the attribute)
        # st.plotly_chart starts with fig.to_dict(), a deep copy of the whole figure, on every run of a
        # chart it cannot replay (the click-to-pick charts are widgets): ~1 ms for a picker, five in a
        # walk. The figure never changes once built, so its dict is made once and handed out after.
        spec = fig.to_dict()
        fig.to_dict = lambda: spec
        return fig
    return heavy.FIGURES.get((kind, key), make)


@st.cache_resource(show_spinner=False, max_entries=1024)
def _drawn(token: str, _st_key: str | None, _fig: go.Figure, _kwargs: dict) -> None:
    st.plotly_chart(_fig, key=_st_key, **_kwargs)


def plotly_chart(fig: go.Figure, *, key: str | None = None, **kwargs) -> None:
    """``st.plotly_chart(fig, key=key, **kwargs)``, sent as the element Streamlit made the first time.

    For a figure from :func:`chart` (shared, never changed afterwards), st.plotly_chart would copy
    the figure to a dict, serialise it to JSON and hash that JSON on every run of every student
    (about 5 ms for one of our charts; a page has several). Drawn inside a cached function instead,
    Streamlit records the element once and replays the recorded message on later runs (its
    documented replay of elements in cached functions). Charts that are widgets (``on_select``),
    figures built elsewhere and fragment-only reruns take the ordinary path.
    """
    ck = getattr(fig, "_vit_key", None)
    # Not in a fragment-only rerun: a replayed chart there broke the next click on the What if?
    # picker in the browser (clicks were lost); the full runs of a class walking the pages keep it.
    if ck is None or kwargs.get("on_select", "ignore") != "ignore" or st_private.fragment_rerun():
        st.plotly_chart(fig, key=key, **kwargs)
        return
    # One string names the element (hashed once, by keyword: no signature inspection per call).
    _drawn(token=f"{ck[0]}|{ck[1]!r}|{key}|{sorted(kwargs.items())!r}", _st_key=key, _fig=fig, _kwargs=kwargs)


@st.cache_resource(show_spinner=False, max_entries=256)
def _table_drawn(token: str, _build: Callable[[], object]) -> None:
    st.table(_build())


def table(kind: str, key: tuple, build: Callable[[], object]) -> None:
    """``st.table(build())``, built and converted once per (kind, key) and replayed afterwards.

    st.table converts its DataFrame to Arrow on every run, and our tables were built with pandas on
    every run too: together 8% of a walking class's server time. Like :func:`plotly_chart`, the
    element is drawn inside a cached function, which Streamlit records once and replays; a
    fragment-only rerun takes the ordinary path. ``key`` must name everything the table shows.
    """
    if st_private.fragment_rerun():
        st.table(build())
        return
    _table_drawn(token=f"{kind}|{tuple(key)!r}", _build=build)


def encoded(kind: str, key: tuple, build: Callable[..., np.ndarray], *args, fmt: str = "jpeg",
            width: int | None = None, url: bool = False, **kwargs) -> bytes | str:
    """An image array from ``build``, encoded once per (kind, key) as JPEG (or PNG) bytes.

    st.image re-encodes a numpy array on every run; bytes pass through untouched. With ``url``, the
    bytes as a ``data:`` URL, also made once: st.image passes a URL through as it is, where bytes
    go to Streamlit's media store on every run (hashed, registered, and then fetched by every
    student's browser with a request of its own: BENCHMARKS "Lecture hall").
    """
    def make():
        img = build(*args, **kwargs)
        return figures.to_jpeg(img, width) if fmt == "jpeg" else figures.to_png(img)
    if not url:
        return heavy.PICTURES.get((kind, key, fmt, width), make)
    # only the URL is kept: the bytes beside it would hold the same picture twice in the byte-bounded cache
    return heavy.PICTURES.get((kind, key, fmt, width, "url"), lambda: figures.data_uri(make()))


def picture_url(kind: str, key: tuple, data: bytes) -> str:
    """JPEG or PNG bytes of the view ``key`` as a data URL for st.image, made once per view (see
    ``encoded``)."""
    return heavy.PICTURES.get((kind, key, "url"), lambda: figures.data_uri(data))


# --- training page -------------------------------------------------------------------------------
@st.cache_data(ttl=30, show_spinner=False)
def dataset_state(name: str) -> tuple[bool, bool]:
    """(cached here, downloadable now), decided in about a second."""
    if vision.is_cached(name):
        return True, True
    return False, vision.host_reachable(vision.DATASETS[name].mirrors[0])


@st.cache_data(show_spinner=False)
def model_cost(vit: dict) -> dict:
    return cnn.model_cost(ViTConfig.from_dict(vit))


# --- shortcut lesson (Critics and impact, "What did this model learn?"; appended) ---------------
# Two models (stage 1 and the final one) share these caches: 40 views each; an entry of
# shortcut_pair holds four 224 px RGB arrays (about 0.6 MB), one of shortcut_class_counts a small dict.
@st.cache_resource(show_spinner=False, max_entries=80)
def shortcut_pair(spec: str, cls: int, scene: int) -> tuple[list, list[np.ndarray]]:
    """One scene of class ``cls`` with and without its class stripes, read by the model ``spec``
    (a bundled: or file: Shapes model): the two Readings and their rollout overlays (H, W, 3)."""
    from vit_core.analysis import shortcut

    loaded = get_model(spec)
    readings = list(shortcut.read_pair(loaded.model, loaded.data_config, shortcut.card_config(spec), cls,
                                       shortcut.lesson_seed(scene)))
    return readings, [figures.overlay(r.image, r.rollout, "inferno", 0.55) for r in readings]


@st.cache_resource(show_spinner=False, max_entries=40)
def shortcut_class_counts(spec: str, cls: int, n: int = 40) -> dict:
    """How often the model names class ``cls`` on ``n`` scenes, with stripes and without."""
    from vit_core.analysis import shortcut

    loaded = get_model(spec)
    return shortcut.class_with_and_without(loaded.model, loaded.data_config, shortcut.card_config(spec), cls, n)
