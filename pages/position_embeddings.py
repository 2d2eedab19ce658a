"""3 · Position embeddings: what the learned 1-D position embeddings found out about 2-D images."""
import math

import streamlit as st

from pages._ui import cache, present
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import code_box, font_size, header, row, take_away
from vit_core.analysis import embeddings, maps, patches
from vit_core.render import charts, figures, recipes, views

CMAP = "RdBu_r"  # matplotlib and plotly both know it

INTRO = ("Self-attention treats its input as a *set*: shuffle the patches and every token's output is "
         "shuffled the same way. To know where a patch came from, ViT adds a learned vector per position "
         "(index 0, 1, 2, …). These are plain **1-D** embeddings: nobody tells the model that the image is a "
         "2-D grid. Yet after training they encode rows, columns and neighbours (Dosovitskiy et al., 2020, "
         "Sec. 4.5 and Fig. 7, centre).")
PRESENT = present.is_present()  # projector: the grid first, the introduction and the controls beside it

ctx = sidebar()
model = ctx.loaded.model
cfg = model.cfg
header("3 · Position embeddings", "" if PRESENT else INTRO)

mf = ctx.figures()
sim = mf.pos_similarity  # (N, gh, gw)
N, gh, gw = sim.shape
P = cfg.patch_size

# --- the full grid ------------------------------------------------------------------------------
KEY = "pos_patch"
if st.session_state.get(KEY, 0) > N - 1:
    st.session_state[KEY] = N - 1  # after switching to a model with fewer positions

EXPLAIN = (f"Tile *i* shows the cosine similarity between the embedding of position *i* and those of all "
           f"{N} positions, laid out on the {gh} x {gw} grid. The tiles themselves sit where their "
           "position is in the image. Positions are numbered like the patches: position *p* is added to patch *p*.")


def scale_radio(place) -> bool:
    """Shared colour scale (True) or each tile its own."""
    mode = place.radio("Colour scale", ["shared -1..1", "each tile its own"], horizontal=True,
                       key="pos_scale", bind="query-params",
                       help="Shared: every tile uses the same scale, so tiles can be compared. "
                            "Own: each tile is stretched from its minimum to its maximum, as in the paper.")
    return mode == "shared -1..1"


def position_slider(place) -> int:
    return place.slider("Position (reading order, from 0)", 0, N - 1, value=min(N - 1, (gh // 2) * gw + gw // 4),
                        key=KEY, bind="query-params", help="Or click a tile in the grid. " + patches.convention(
                            gw, N, model.num_prefix_tokens))


if PRESENT:  # the grid is the first figure: beside the introduction and the controls, not below
    left, right = st.columns(2)
    right.markdown(INTRO + "\n\n" + EXPLAIN)
    shared, i = scale_radio(right), position_slider(right)
else:
    st.markdown(f"### Each position compared with every other\n\n{EXPLAIN}")
    at_left, at_right = row(2, gap="large")  # one row, not columns: the slider first, the radio beside it
    i, shared = position_slider(at_left), scale_radio(at_right)
r, c = patches.patch_cell(i, gw)
where = patches.patch_label(i, gw, "position").capitalize()  # "Position 101 (row 7, column 3)"

tile_px = max(24, min(64, 840 // max(gh, gw)))
pitch, width = views.mosaic_pitch((gh, gw), tile_px)
label = "cosine similarity" if shared else "each tile: its lowest (0) to its highest (1)"
fs = font_size()
grid_key = (ctx.spec, shared, tile_px)
if not PRESENT:
    left, right = st.columns(2)
with left:
    height = 470
    # PNG: flat tiles of cells, lossless at 138 kB where JPEG q92 took 320 kB (the largest element of a walk)
    mosaic = cache.encoded("pos_mosaic", grid_key, views.similarity_grid, sim, CMAP, shared, tile_px, fmt="png")
    picker = cache.chart("pos_pick", grid_key + (i, fs), figures.mosaic_picker, mosaic, (gh, gw), pitch,
                         selected=i, height=430 if PRESENT else height, font_size=fs)
    cache.plotly_chart(picker, key="pos_pick", selection_mode="points", config=PLOTLY_CONFIG,
                    on_select=lambda: figures.store_pick(st.session_state, "pos_pick", KEY, N))
    st.image(cache.encoded("pos_bar", (shared, width), views.similarity_bar, CMAP, shared, width, label, fmt="png", url=True),
             width="stretch", output_format="PNG")
    take_away("pos_dl_grid", "position-similarity-grid",
              recipes.position_similarity(mf, CMAP, shared, tile_px, i, label), ctx)
with right:
    tile = sim[i]
    zmin, zmax = (-1.0, 1.0) if shared else (float(tile.min()), float(tile.max()))
    big = cache.chart("pos_big", (ctx.spec, shared, i, fs), charts.similarity_tile, tile, r, c,
                      where, zmin, zmax, height=height, marker=18, font_size=fs)
    cache.plotly_chart(big, key="pos_big", config=PLOTLY_CONFIG)
    st.caption(f"{where}, the one added to patch {i}: its cosine similarity to every position (x marks itself).")

# --- what the numbers say ------------------------------------------------------------------------
st.subheader("Learned 1-D, found 2-D")
nf = cache.derived("pos_near_far", (ctx.spec,), embeddings.neighbour_vs_far, sim, far=5)
rc = cache.derived("pos_row_col", (ctx.spec,), embeddings.row_column_similarity, sim)


def fmt(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    out = f"{v:.2f}"
    return "0.00" if out == "-0.00" else out


m1, m2, m3, m4 = row(4)
m1.metric("Neighbours", fmt(nf["near"]), help=f"Mean cosine similarity over the {nf['n_near']} pairs of "
                                               "positions next to each other (up, down, left, right).")
m2.metric("5 or more cells apart", fmt(nf["far"]), help=f"Mean over the {nf['n_far']} pairs at least 5 "
                                                        "cells apart in row or column.")
m3.metric("Same row", fmt(rc["row"]))
m4.metric("Same column", fmt(rc["col"]))
found = ""
if math.isnan(nf["far"]):
    st.caption(f"This grid is only {gh} x {gw}: no two positions are 5 cells apart.")
else:
    gap = nf["near"] - nf["far"]
    verdict = ("neighbours are clearly more alike than distant positions" if gap > 0.1 else
               "neighbours are only slightly more alike than distant positions" if gap > 0 else
               "this model shows no neighbour structure (untrained or little-trained embeddings look like this)")
    found = (
        f"In this model the embeddings of **neighbouring** positions have mean cosine similarity "
        f"**{fmt(nf['near'])}**; positions **5 or more cells apart**: **{fmt(nf['far'])}**: {verdict}. "
        f"Positions in the same row average {fmt(rc['row'])}, in the same column {fmt(rc['col'])}, "
        f"elsewhere {fmt(rc['other'])}: that is the row and column striping you can see in the tiles.\n\n")
WHY = ("Nothing in the architecture asks for this: the model only ever adds vector number *i* to "
       "patch number *i*. Being close in the image helps predict what a patch means, so training "
       "pulls nearby positions together. The paper also tried 2-D-aware and relative position "
       "embeddings and found them no better than these plain 1-D ones (Appendix D.4).")
st.markdown(found + WHY)  # one element for both paragraphs

prof = cache.derived("pos_profile", (ctx.spec,), embeddings.distance_profile, sim)
dfig = cache.chart("pos_dist", (ctx.spec, fs), lambda: charts.similarity_by_distance(
    prof.dist, prof.means, "Mean similarity against distance (dot size: number of pairs)", font_size=fs,
    counts=prof.counts))
cache.plotly_chart(dfig, key="pos_dist", config=PLOTLY_CONFIG)
ends = (f"only {prof.counts[-1]} pair{'s' if prof.counts[-1] != 1 else ''} (corner to corner) at the largest "
        f"distance, {prof.dist[-1]:.1f} cells")
if prof.border_from is not None and prof.climb > 0.1:
    why = (f"The curve climbs back at the right end although distant positions are in general less alike: few "
           f"pairs are that far apart (dot size; {ends}), and from {prof.border_from:.1f} cells on every pair "
           f"joins two positions within {prof.edge} cells of the border, which this model embeds alike")
    if abs(prof.corr_centre) > abs(prof.corr_distance):
        why += (f" (over all pairs, similarity follows how differently far from the centre two positions are, "
                f"correlation {prof.corr_centre:.2f}, more than their distance, {prof.corr_distance:.2f})")
    why += "."
else:
    why = (f"Each dot is the mean over the pairs that far apart, and its size shows how many: {ends}, so the "
           "right end of the curve is its noisiest part.")
# the note on the plot and the next section's heading (resizing): one element
st.markdown("One dot per distance: the mean similarity of all pairs of positions that far apart; pairs in the "
            "same row or column sit at whole-number distances, which is why those dots can stand out. " + why
            + "\n\n### A different input size")

# --- resizing --------------------------------------------------------------------------------------
img_size = cfg.img_size
sizes = cache.derived("pos_sizes", (img_size, P), embeddings.input_size_options, img_size, P)
if st.session_state.get("pos_size") not in (None, *sizes):
    st.session_state["pos_size"] = img_size
default_size = min(sizes, key=lambda v: abs(v - 1.5 * img_size))


@st.fragment
def resized() -> None:
    """The input-size slider reruns only this part."""
    size = st.select_slider("Input size (pixels per side)", options=sizes, value=default_size, key="pos_size",
                            bind="query-params",
                            help="The model has one embedding per position of its training grid. A larger image "
                                 "has more patches, so the embeddings are resampled to the new grid.")
    ng = (size // P, size // P)
    new_sim, new_nf = cache.resized_positions(ctx.spec, ng)
    j = embeddings.map_patch(i, (gh, gw), ng)
    if ng == (gh, gw):
        st.markdown(f"{size} x {size} pixels is the size this model was trained at: its {N} position embeddings are "
                    "used as they are. Move the slider to see what a smaller or larger input would get.")
    else:
        st.markdown(
            f"At {size} x {size} pixels the model would see a {ng[0]} x {ng[1]} grid: {ng[0] * ng[1]} patches instead "
            f"of {N}. There is no learned embedding for the new positions, so they are **interpolated** from the "
            f"trained {gh} x {gw} grid (bicubic, as timm does; the paper does the same when fine-tuning at a higher "
            "resolution, Sec. 3.2). It is the one place where ViT is told that the patches form a 2-D grid.")
    left, right = st.columns(2)
    for col, name, m, title, (rr, cc), g in (
        (left, "a", sim[i], f"Trained grid {gh} x {gw}: position {i}", divmod(i, gw), (gh, gw)),
        (right, "b", new_sim[j], f"Resampled {ng[0]} x {ng[1]}: position {j}", divmod(j, ng[1]), ng),
    ):
        f = cache.chart(f"pos_resize_{name}", (ctx.spec, g, i, fs), charts.similarity_tile, m, rr, cc, title,
                        height=440, font_size=fs)
        with col:
            cache.plotly_chart(f, key=f"pos_resize_{name}", config=PLOTLY_CONFIG)
    st.caption(f"The resampled position {j} sits where position {i} was. Neighbours vs 5+ cells apart after "
               f"resampling: {fmt(new_nf['near'])} vs {fmt(new_nf['far'])} (trained grid: {fmt(nf['near'])} vs "
               f"{fmt(nf['far'])}).")


resized()

code_box(maps.patch_pos_embed, maps.position_similarity, embeddings.neighbour_vs_far,
         embeddings.resized_similarity)
