"""Every Streamlit cache of the app, in one module: what is computed once and shared by all.

Keys are (model spec, image SHA-256, view parameters); the heavy objects ride along unhashed
(leading underscore) so that Streamlit never hashes image bytes or tensors itself (its sampling
hash confuses near-identical images).
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from vit_core import cnn
from vit_core.analysis import attention_views, explain, maps
from vit_core.data import vision
from vit_core.io import images, loading
from vit_core.model import ViTConfig
from vit_core.render import drawing, figures


# --- models and per-image analyses --------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=6)
def get_model(spec: str) -> loading.LoadedModel:
    """One model per spec, shared by every session (eval mode; nothing per-call stored on it)."""
    loaded = loading.load_model(spec)
    if torch.cuda.is_available():
        loaded.model.to("cuda")
    return loaded


@st.cache_resource(show_spinner=False, max_entries=6)
def get_model_figures(spec: str) -> explain.ModelFigures:
    return explain.model_figures(get_model(spec).model)


@st.cache_resource(show_spinner=False, max_entries=24, ttl=3600)
def get_analysis(spec: str, sha: str, _data: bytes) -> explain.Analysis:
    loaded = get_model(spec)
    return explain.analyze(loaded.model, loaded.transform, loaded.data_config, images.load_image(_data))


@st.cache_resource(show_spinner=False, max_entries=64)
def get_relevance(spec: str, sha: str, target: int, _data: bytes) -> np.ndarray:
    """Chefer et al. relevance (gh, gw) for one class."""
    loaded = get_model(spec)
    x = loaded.transform(images.load_image(_data)).unsqueeze(0)  # (1, 3, H, W)
    x = x.to(next(loaded.model.parameters()).device)
    return maps.class_relevance(loaded.model, x, target).numpy()


# --- attention views ----------------------------------------------------------------------------
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
