"""The recipes of the explainer pages' pictures: each names the picture, the numbers behind it and
the vit_core code that recomputes both (``export.Recipe``).

A recipe takes what the page already holds (the cached ``explain.Analysis``, the model's figures,
the widget values) and only wraps it: the numbers are gathered and the picture drawn when the
visitor clicks a download, never on a rerun. The bodies use the names ``export.script`` defines
(``lm``, ``data``, ``img``, ``a``, ``mf``) and only small values from the page (layer, head,
query, colour map), so that the string costs nothing to build. Layers, heads and queries are
counted from 0 in the code, as in the arrays.
"""
from __future__ import annotations

import numpy as np

from vit_core.analysis import attention_views, patches
from vit_core.analysis.explain import Analysis, ModelFigures, patch_map
from vit_core.render import drawing, views
from vit_core.render.export import Recipe

# The picture builders of the patch pages whose first two arguments are the image and a patch size.
PATCH_PICTURES = (drawing.grid_overlay, drawing.numbered_grid, drawing.token_sequence)


def _args(*args) -> str:
    """Small values as Python source, for a call in a script."""
    return ", ".join(repr(float(v) if isinstance(v, np.floating) else int(v) if isinstance(v, np.integer) else v)
                     for v in args)


# --- 1 · Patches and 2 · Patch embedding ------------------------------------------------------------
def preprocess(a: Analysis, data: bytes, crop_box, whole: bool) -> Recipe:
    """The picture as uploaded with the part the model keeps framed; the box and the model's view."""
    def numbers() -> dict:
        return {"crop_box": np.asarray(crop_box or (), float), "model_view": a.image}
    body = ("plan = patches.preprocess_plan(lm.transform, img.width, img.height, lm.data_config)\n"
            "whole = plan.crop_box is not None and patches.keeps_everything(plan.crop_box, img.width, img.height)\n"
            "picture = views.crop_preview(data, plan.crop_box, whole)\n"
            "numbers = {'crop_box': np.asarray(plan.crop_box or (), float), 'model_view': a.image}")
    return Recipe(body, numbers, (views.crop_preview, data, crop_box, whole),
                  ("analysis.patches", "render.views"))


def patch_grid(a: Analysis, build, patch: int, *args) -> Recipe:
    """The model's view cut into ``patch`` x ``patch`` tiles, drawn by ``build(a.image, patch, *args)``
    (one of PATCH_PICTURES); at the model's own patch size also the normalised values it reads."""
    if build not in PATCH_PICTURES:
        raise ValueError(f"{build!r} is not one of {[b.__name__ for b in PATCH_PICTURES]}")
    own = patch == a.patch_size

    def numbers() -> dict:
        out = {"model_view": a.image, "tiles": patches.patch_tiles(a.image, patch)}
        return {**out, "patches": a.patches} if own else out
    body = (f"tiles = patches.patch_tiles(a.image, {patch})  # (N, P, P, 3) in reading order\n"
            f"picture = drawing.{build.__name__}(a.image, {_args(patch, *args)})\n"
            + ("# patches: (N, C*P*P), the normalised values the model reads\n" if own else "")
            + "numbers = {'model_view': a.image, 'tiles': tiles" + (", 'patches': a.patches}" if own else "}"))
    return Recipe(body, numbers, (build, a.image, patch, *args), ("analysis.patches", "render.drawing"))


def patch_planes(a: Analysis, i: int, tile_px: int = 150) -> Recipe:
    """Patch ``i`` as its three colour planes; its pixels, its flattened values and its embedding."""
    tile = patches.patch_tiles(a.image, a.patch_size)[i]  # (P, P, 3): a view, no copy

    def numbers() -> dict:
        return {"tile": tile, "flat": a.patches[i], "embedding": a.patch_embed[i]}
    body = (f"tile = patches.patch_tiles(a.image, a.patch_size)[{i}]  # (P, P, 3)\n"
            f"picture = drawing.channel_planes(tile, {tile_px})\n"
            f"numbers = {{'tile': tile, 'flat': a.patches[{i}], 'embedding': a.patch_embed[{i}]}}  # x_p, x_p E + b")
    return Recipe(body, numbers, (drawing.channel_planes, tile, tile_px), ("analysis.patches", "render.drawing"))


def filter_pcs(mf: ModelFigures, cols: int = 7, tile_px: int = 96) -> Recipe:
    """The principal components of the patch-embedding filters and their share of the variance."""
    def numbers() -> dict:
        return {"filter_pcs": mf.filter_pcs, "explained_variance": mf.filter_pcs_var}
    body = (f"picture = drawing.pcs_mosaic(mf.filter_pcs, {cols}, {tile_px}, mf.filter_pcs_var)\n"
            "numbers = {'filter_pcs': mf.filter_pcs, 'explained_variance': mf.filter_pcs_var}  # (k, P, P, C), (k,)")
    return Recipe(body, numbers, (drawing.pcs_mosaic, mf.filter_pcs, cols, tile_px, mf.filter_pcs_var),
                  ("render.drawing",), needs="model")


# --- 3 · Position embeddings ------------------------------------------------------------------------
def position_similarity(mf: ModelFigures, cmap: str, shared: bool, tile_px: int, highlight: int,
                        label: str) -> Recipe:
    """Every position's cosine similarity to every other, on the grid (paper Fig. 7, centre)."""
    sim = mf.pos_similarity  # (N, gh, gw)

    def numbers() -> dict:
        return {"similarity": sim}
    body = ("sim = mf.pos_similarity  # (N, gh, gw): tile i = position i against every position\n"
            f"picture = views.similarity_grid(sim, {_args(cmap, shared, tile_px, highlight, label)})\n"
            "numbers = {'similarity': sim}")
    return Recipe(body, numbers, (views.similarity_grid, sim, cmap, shared, tile_px, highlight, label),
                  ("render.views",), needs="model")


# --- 4 · Self-attention -----------------------------------------------------------------------------
def attention_row(a: Analysis, s: attention_views.AttentionStep, layer: int, head: int, query: int,
                  shown: str) -> Recipe:
    """One attention row recomputed from q and k (``s``), its "scores" or softmax "weights" shown.

    The analysis keeps no q, k, v: the script recomputes the layer's with ``explain.layer_qkv``."""
    if shown not in ("scores", "weights"):
        raise ValueError(f"shown must be 'scores' or 'weights', got {shown!r}")
    row, cmap = (s.scores, "viridis") if shown == "scores" else (s.weights.astype("float32"), "inferno")

    def numbers() -> dict:
        return {"q": s.q, "k": s.k, "scores": s.scores, "weights": s.weights, "stored": s.stored, "out": s.out}
    row_src = "s.scores" if shown == "scores" else "s.weights.astype('float32')"
    body = (f"# layer {layer + 1}, head {head + 1} on the page: counted from 0 here\n"
            f"qkv = explain.layer_qkv(lm.model, a, {layer})  # this layer's q, k, v, each (h, T, hd)\n"
            f"attn = explain.layer_attention(lm.model, a, {layer})  # its own attention, float32 (h, T, T)\n"
            f"s = attention_views.attention_step(a, qkv, layer={layer}, head={head}, query={query}, attn=attn)\n"
            f"picture = views.token_overlay(a, {row_src}, {cmap!r}, 0.65)\n"
            "numbers = {'q': s.q, 'k': s.k, 'scores': s.scores, 'weights': s.weights, 'stored': s.stored,\n"
            "           'out': s.out}  # stored: the model's own row attn[head, query]")
    return Recipe(body, numbers, (views.token_overlay, a, row, cmap, 0.65),
                  ("analysis.attention_views", "render.views"))


# --- 5 · Attention maps and 6 · Prediction ----------------------------------------------------------
def cls_mosaic(a: Analysis, cmap: str, alpha: float, tile: int, picture=None) -> Recipe:
    """[CLS] attention of every layer and head as a labelled mosaic (``picture``, when drawn already)."""
    def numbers() -> dict:
        return {"cls_maps": attention_views.cls_maps(a)}
    body = ("cls = attention_views.cls_maps(a)  # (L, h, gh, gw)\n"
            f"picture = drawing.labelled_mosaic(drawing.overlay_tiles(a.image, cls, {_args(cmap, alpha)}, "
            f"tile={tile}))\n"
            "numbers = {'cls_maps': cls}")
    png = picture if picture is not None else (
        lambda: drawing.labelled_mosaic(drawing.overlay_tiles(a.image, attention_views.cls_maps(a), cmap, alpha,
                                                              tile=tile)),)
    return Recipe(body, numbers, png, ("analysis.attention_views", "render.drawing"))


def query_attention(a: Analysis, layer: int, head: str, query: int, cmap: str, alpha: float) -> Recipe:
    """Where token ``query`` looks in ``layer``: one head ("1".."h", as the page names them) or "mean"."""
    def numbers() -> dict:
        return {"maps": attention_views.query_maps(a, layer, query), "rows": a.attn[layer, :, query].astype(np.float32)}
    shown = "the mean of qmaps" if head == "mean" else f"qmaps[{int(head) - 1}] (heads from 1 in this argument)"
    body = (f"# layer {layer + 1} on the page: counted from 0 here\n"
            f"qmaps = attention_views.query_maps(a, {layer}, {query})  # (h, gh, gw), one map per head\n"
            f"picture = views.query_overlay(a, {_args(layer, head, query, cmap, alpha)})  # shows {shown}\n"
            f"numbers = {{'maps': qmaps, 'rows': a.attn[{layer}, :, {query}].astype('float32')}}  # (h, T) rows")
    return Recipe(body, numbers, (views.query_overlay, a, layer, head, query, cmap, alpha),
                  ("analysis.attention_views", "render.views"))


def cls_layer(a: Analysis, layer: int, fusion: str, cmap: str, alpha: float) -> Recipe:
    """Raw [CLS] attention of one layer, its heads fused by ``fusion``."""
    def numbers() -> dict:
        per_head = attention_views.cls_maps(a)[layer]  # (h, gh, gw)
        return {"cls_maps": per_head, "fused": attention_views.fuse(per_head, fusion)}
    body = (f"per_head = attention_views.cls_maps(a)[{layer}]  # (h, gh, gw); layer {layer + 1} on the page\n"
            f"picture = views.cls_overlay(a, {_args(layer, fusion, cmap, alpha)})\n"
            f"numbers = {{'cls_maps': per_head, 'fused': attention_views.fuse(per_head, {fusion!r})}}")
    return Recipe(body, numbers, (views.cls_overlay, a, layer, fusion, cmap, alpha),
                  ("analysis.attention_views", "render.views"))


def rollout(a: Analysis, roll: np.ndarray, upto: int, fusion: str, discard: float, cmap: str,
            alpha: float) -> Recipe:
    """Rollout after layers 1..``upto`` (``roll``: ``explain.rollout_with(a, fusion, discard)``)."""
    i = upto - 1

    def numbers() -> dict:
        return {"rollout": roll[i], "cls_map": patch_map(a, roll[i][0])}
    body = (f"roll = explain.rollout_with(a, {_args(fusion, discard)})  # (L, T, T); roll[{i}]: layers 1-{upto}\n"
            f"picture = views.token_overlay(a, roll[{i}][0], {_args(cmap, alpha)})\n"
            f"numbers = {{'rollout': roll[{i}], 'cls_map': explain.patch_map(a, roll[{i}][0])}}  # (T, T), (gh, gw)")
    return Recipe(body, numbers, (views.token_overlay, a, roll[i][0], cmap, alpha), ("render.views",))


def relevance(a: Analysis, m: np.ndarray, target: int, cmap: str, alpha: float) -> Recipe:
    """Chefer et al.'s relevance map ``m`` (gh, gw) of class ``target``."""
    def numbers() -> dict:
        return {"relevance": m}
    body = ("x = lm.transform(img).unsqueeze(0)  # (1, 3, H, W)\n"
            f"rel = maps.class_relevance(lm.model, x, {int(target)}).numpy()  # (gh, gw): a backward pass\n"
            f"picture = views.map_overlay(a, rel, {_args(cmap, alpha)})\n"
            "numbers = {'relevance': rel}")
    return Recipe(body, numbers, (views.map_overlay, a, m, cmap, alpha), ("analysis.maps", "render.views"))


__all__ = ["PATCH_PICTURES", "preprocess", "patch_grid", "patch_planes", "filter_pcs", "position_similarity",
           "attention_row", "cls_mosaic", "query_attention", "cls_layer", "rollout", "relevance"]
