"""2 · Patch embedding: flatten a patch, multiply by one learned matrix, add [CLS] and positions."""
import streamlit as st

from pages._ui import cache, present
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import code_box, font_size, header, row, take_away
from vit_core.analysis import embeddings, maps, patches
from vit_core.render import charts, figures, recipes, style

INTRO = ("Each patch becomes a vector in two moves: **flatten** its pixels into one long list of numbers, "
         "then multiply by one learned matrix **E**, the same for every patch (Dosovitskiy et al., 2020, "
         "Eq. 1). Pick a patch and follow its numbers.")
PRESENT = present.is_present()  # projector: the picker first, the introduction beside it

ctx = sidebar()
model = ctx.loaded.model
cfg = model.cfg
header("2 · Patch embedding", "" if PRESENT else INTRO)

a = ctx.analysis() if PRESENT else ctx.analysis_with_status()

gh, gw = a.grid
P = a.patch_size
N = gh * gw
T = a.num_tokens
C = cfg.in_chans
D = a.patch_embed.shape[1]
flat_len = a.patches.shape[1]
view = (ctx.spec, ctx.sha)


def sizes() -> None:
    """How long a flattened patch is, how long its embedding, how large E."""
    c1, c2, c3 = row(3)
    c1.metric("Flattened patch", f"{C} x {P} x {P} = {flat_len:,}")
    c2.metric("Embedding size D", f"{D:,}")
    c3.metric("Matrix E (+ bias)", f"{flat_len:,} x {D:,} (+ {D:,})")
    if flat_len == D:
        st.info(f"Here both numbers are {D}, but that is a coincidence of this model (as for ViT-B/16, where "
                "3 x 16 x 16 = 768 = D). They are different things: ViT-L/16 flattens patches to 768 numbers "
                "too, but embeds them in D = 1024.")
    else:
        st.caption(f"Two different numbers: a patch has {flat_len:,} values, its embedding {D:,}. "
                   "(They only coincide in ViT-B/16, where 3 x 16 x 16 = 768 = D.)")


if not PRESENT:  # in presentation mode they come after step 1, so that the picker starts the page
    sizes()

# --- pick a patch --------------------------------------------------------------------------------
KEY = "emb_patch"
if st.session_state.get(KEY, 0) > N - 1:
    st.session_state[KEY] = N - 1  # after switching to a model with fewer patches


@st.fragment
def follow_patch() -> None:
    """Steps 1-6 follow the chosen patch: the slider and the picker rerun only this part."""
    fs = font_size()
    if not PRESENT:
        st.subheader("Step 1: pick a patch")
    left, right = st.columns([5, 6])
    with right:
        if PRESENT:
            st.markdown(INTRO + "\n\n**Step 1: pick a patch**")
        i = st.slider("Patch (reading order, from 0)", 0, N - 1, value=embeddings.most_varied_patch(a.patches),
                      key=KEY, bind="query-params", help="Or click a patch on the image. " + patches.convention(
                          gw, N, a.num_prefix_tokens))
        planes = recipes.patch_planes(a, i, 150)
        st.markdown(f"**{patches.patch_label(i, gw).capitalize()}** (token {i + a.num_prefix_tokens} of the "
                    f"sequence) and its three colour planes, each {P} x {P} pixels:")
        st.image(cache.encoded("emb_planes", view + (i,), *planes.png, url=True), width="stretch", output_format="JPEG")
        take_away("emb_dl_planes", f"patch-{i}-planes", planes, ctx)
    with left:
        picker = cache.chart("emb_pick", view + (i, fs), figures.patch_picker, a.image, a.grid, P, selected=i,
                             height=430, font_size=fs)
        cache.plotly_chart(picker, key="emb_pick", selection_mode="points", config=PLOTLY_CONFIG,
                        on_select=lambda: figures.store_pick(st.session_state, "emb_pick", KEY, N))
        st.caption("Click a patch to select it.")

    if PRESENT:
        sizes()

    # --- flatten ---------------------------------------------------------------------------------
    st.subheader(f"Step 2: flatten to {flat_len:,} numbers")
    x = a.patches[i]  # (C*P*P,) normalised input values, channel-major
    cache.plotly_chart(cache.chart("emb_flat", view + (i, fs), charts.flat_patch, x, C,
                                f"x_p for patch {i}: all red values, then green, then blue", font_size=fs),
                    key="emb_flat", config=PLOTLY_CONFIG)
    # the note on the chart and the next step's heading (project): one element
    st.markdown(f"The order (channel, row, column) is the order of the weights in the convolution that "
                f"implements E. Values are after normalisation: from {x.min():.2f} to {x.max():.2f} here.\n\n"
                f"### Step 3: multiply by E, get {D:,} numbers")

    # --- project ---------------------------------------------------------------------------------
    cache.plotly_chart(cache.chart("emb_vec", view + (i, fs), charts.vector, a.patch_embed[i],
                                f"x_p E + b for patch {i}: its embedding", font_size=fs),
                    key="emb_vec", config=PLOTLY_CONFIG)
    diff = a.conv_unfold_diff
    verdict = "equal up to float rounding" if diff < 1e-4 else "larger than float rounding: please report this"
    st.markdown(  # with the next step's heading (the whole matrix): one element
        f"In code, E is a **convolution** with a {P} x {P} kernel and stride {P}: the kernel never overlaps, so "
        f"it sees each patch exactly once. It is the same as cutting the patches out (unfold), flattening them "
        f"and multiplying by the weight reshaped to {flat_len:,} x {D:,}. Checked on your image, over all {N} "
        f"patches and {D} dimensions, the largest difference between the two is **{diff:.1e}**: {verdict}.\n\n"
        f"### Step 4: all patches at once, an {N} x {D} matrix")
    # --- the whole matrix (its heading ends the markdown above) -----------------------------------
    lim = figures.clip_limit(a.patch_embed)
    hm = cache.chart("emb_matrix", view + (i, fs), figures.heatmap, a.patch_embed,
                     title=f"Patch embeddings of your image (row {i} outlined)", colorscale="RdBu_r",
                     xlabel="embedding dimension", ylabel="patch", height=460, zmin=-lim, zmax=lim, outline_row=i,
                     font_size=fs)
    cache.plotly_chart(hm, key="emb_matrix", config=PLOTLY_CONFIG)
    matrix_note = (f"One row per patch, one column per dimension. The colour scale is clipped at ±{lim:.2f} "
                   "(the 99th percentile) so that a few large values do not wash out the rest.\n\n")

    # --- filters ---------------------------------------------------------------------------------
    mf = ctx.figures()
    k = len(mf.filter_pcs_var)
    pcs = recipes.filter_pcs(mf, 7, 96)
    st.markdown(  # the note on the matrix, the heading and its paragraph: one element
        matrix_note + "### Step 5: what E has learned\n\n"
        f"Each of the {D} rows of E is a little {P} x {P} colour filter. Treating them as {D} samples and taking "
        f"their principal components gives the {k} patterns along which the filters differ most (paper Fig. 7, "
        f"left). Each tile is one component, scaled to show its full contrast; its label is the share of the "
        f"filters' variance it explains. Together these {k} explain **{mf.filter_pcs_var.sum():.0%}**. In the "
        "paper (ViT-L/32) they *resemble plausible basis functions for a low-dimensional representation of the "
        "fine structure within each patch*: smooth blobs, edges and stripes, much like the first layer of a CNN.")
    pcs_png = cache.encoded("emb_pcs", (ctx.spec,), *pcs.png, fmt="png")
    # on a projector the whole mosaic fits on the screen under the control bar
    st.image(cache.picture_url("emb_pcs", (ctx.spec,), pcs_png), width=style.fit_width(*figures.image_size(pcs_png), max_width=1100) if PRESENT else "stretch",
             output_format="PNG")
    take_away("emb_dl_pcs", "filter-principal-components", pcs, ctx)

    # --- CLS and positions -----------------------------------------------------------------------
    st.subheader("Step 6: add [CLS] and the position embeddings")
    parts = embeddings.embedding_parts(model, a.grid, a.patch_embed, a.tokens[0])
    prefix = parts["prefix"]
    s1, s2, s3 = row(3)
    s1.metric("Patch embeddings", f"{N} x {D}")
    s2.metric({0: "no [CLS] token", 1: "+ [CLS] in front"}.get(prefix, f"+ [CLS] and {prefix - 1} registers"),
              f"{T} x {D}")
    s3.metric("+ position embeddings", f"{T} x {D}")
    st.markdown(
        r"$\mathbf{z}_0 = [\mathbf{x}_\mathrm{class};\, \mathbf{x}_p^1\mathbf{E};\, \dots;\, "
        r"\mathbf{x}_p^N\mathbf{E}] + \mathbf{E}_{pos}$. "
        f"A learned **[CLS]** vector is put in front of the {N} patch "
        f"embeddings, and a learned **position embedding** (the model stores {parts['pos_shape'][0]} x "
        f"{parts['pos_shape'][1]}) is **added** to every token, so that the same patch at a different place "
        "gives a different token. Without it, the Transformer would see a bag of patches with no order.")

    pn, qn = parts["patch_norm"], parts["pos_norm"]
    t1, t2, t3 = row(3)
    t1.metric(f"Size of x_p E, patch {i}", f"{pn[i]:.2f}", help="Euclidean norm of the vector")
    t2.metric("Size of its position embedding", f"{qn[i]:.2f}")
    t3.metric("Their ratio", f"{pn[i] / max(qn[i], 1e-12):.2f}")
    cache.plotly_chart(cache.chart("emb_norms", view + (i, fs), charts.norms, pn, qn, i, font_size=fs),
                    key="emb_norms", config=PLOTLY_CONFIG)
    extra = ""
    if parts["cls_norm"] is not None:
        extra = f" The [CLS] vector has norm {parts['cls_norm']:.2f}" + (
            f" and its position embedding {parts['cls_pos_norm']:.2f}." if parts["cls_pos_norm"] is not None
            else ".")
    check = ("" if parts["rebuild_diff"] is None else
             " Rebuilding z₀ from these pieces gives the model's own encoder input "
             + ("exactly." if parts["rebuild_diff"] == 0 else f"to within {parts['rebuild_diff']:.1e}."))
    st.caption(f"On average over the patches the image part has norm {pn.mean():.2f} and the position part "
               f"{qn.mean():.2f}.{extra}{check} The next page looks at what the position embeddings learned.")


follow_patch()

code_box(maps.conv_vs_unfold, maps.patch_embed_pcs, embeddings.embedding_parts)
