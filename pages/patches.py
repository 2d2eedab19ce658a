"""1 · Patches: from the uploaded picture to a sequence of patch tokens, with the model's real sizes."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from pages._ui.sidebar import sidebar
from pages._ui.widgets import code_box, header, png_button
from vit_core.render import drawing
from vit_core.render import figures
from vit_core.io import images
from vit_core.analysis import patches

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("1 · Patches",
       "A Transformer reads a sequence of tokens. The Vision Transformer (Dosovitskiy et al., 2020) makes "
       "one out of an image in the simplest way possible: it resizes the image to a fixed size, cuts it into "
       "square **patches** of P x P pixels and reads them like words, left to right, top to bottom. "
       "This page does exactly that with your image and the model that is loaded now.")

a = ctx.analysis_with_status()

gh, gw = a.grid
P = a.patch_size
N = gh * gw
T = a.num_tokens
prefix = a.num_prefix_tokens
H, W = a.image.shape[:2]
C = cfg.in_chans

# --- 1. preprocessing ----------------------------------------------------------------------------
st.subheader("Step 1: the model's view of your image")
original = images.load_image(ctx.image_bytes)
plan = patches.preprocess_plan(ctx.loaded.transform, original.width, original.height, ctx.loaded.data_config)
thumb = original.convert("RGB")
thumb.thumbnail((900, 900))
if thumb.width < 480:  # tiny originals: enlarge crisply so both pictures show the same pixels
    f = -(-480 // thumb.width)
    thumb = thumb.resize((thumb.width * f, thumb.height * f), Image.NEAREST)
shrink = thumb.width / original.width
whole = plan.crop_box is not None and patches.keeps_everything(plan.crop_box, original.width, original.height)
box = None if plan.crop_box is None or whole else tuple(v * shrink for v in plan.crop_box)
orig_view = drawing.draw_box(np.asarray(thumb), box, width=max(3, thumb.width // 150))

left, right = st.columns(2)
with left:
    kept = (" (the model keeps all of it)" if whole else
            " (the cyan box is the part the model keeps)" if box is not None else "")
    st.markdown(f"**Your image**: {original.width} x {original.height} pixels{kept}")
    st.image(orig_view, width="stretch")
    png_button(orig_view, "original-with-crop.png", key="patches_dl_orig")
with right:
    st.markdown(f"**What the model sees**: {W} x {H} pixels, cut into {gh} x {gw} patches")
    model_view = drawing.grid_overlay(a.image, P, target=640)
    st.image(model_view, width="stretch")
    png_button(model_view, "model-view.png", key="patches_dl_view")

rows = [f"| {i} | **{s.name}** | {s.text} |" for i, s in enumerate(plan.steps)]
st.markdown("The preprocessing comes from the model's own data configuration (the same steps it was "
            "trained and evaluated with):\n\n| | step | here |\n|---|---|---|\n" + "\n".join(rows))
chan = "RGB"[:len(plan.mean)] if len(plan.mean) <= 3 else "".join(str(i) for i in range(len(plan.mean)))
mean_s = ", ".join(f"{c} {m:.3f}" for c, m in zip(chan, plan.mean))
std_s = ", ".join(f"{c} {s:.3f}" for c, s in zip(chan, plan.std))
st.markdown(f"Normalising subtracts the mean **({mean_s})** and divides by the standard deviation "
            f"**({std_s})**, so the numbers the network gets range from **{a.patches.min():.2f}** to "
            f"**{a.patches.max():.2f}** for this image, not 0 to 255. The picture on the right undoes the "
            "normalisation so that you can look at it.")

# --- 2. the grid and the sequence ------------------------------------------------------------------
st.subheader(f"Step 2: {N} patches, read like words")
count = min(N, 2 * gw, 23)
scale = max(1, 720 // max(H, W))
numbered = drawing.numbered_grid(a.image, P, scale, highlight_first=count)
left, right = st.columns([3, 2])
with left:
    st.image(numbered, width="stretch")
    png_button(numbered, "numbered-patches.png", key="patches_dl_grid")
with right:
    st.markdown(f"Each patch gets a number in **reading order**: row by row, left to right. Patch 0 is the "
                f"top-left corner, patch {gw - 1} ends the first row, patch {N - 1} is the bottom-right corner. "
                f"The model then sees a **sequence** of {N} tokens, just like a sentence of {N} words"
                + (", and puts one extra learned **[CLS]** token in front (borrowed from BERT) whose output "
                   "will carry the answer." if prefix else
                   ". This model has no [CLS] token: it averages the patch tokens at the end."))
seq = drawing.token_sequence(a.image, P, count, cols=-(-(count + int(prefix > 0)) // 2), tile_px=80,
                             with_cls=prefix > 0)
st.image(seq, width="stretch")
st.caption(f"The first {count} of {N} patch tokens (tinted in the grid above)"
           + (", with [CLS] in front. " if prefix else ". ") +
           f"In total: T = {N} + {prefix} = **{T} tokens**.")
png_button(seq, "token-sequence.png", key="patches_dl_seq")
if prefix > 1:
    st.caption(f"This model also has {prefix - 1} register token(s) after [CLS]: extra learned tokens "
               "with no patch behind them.")

# --- 3. patch size what-if -------------------------------------------------------------------------
st.subheader(f"Step 3: why {P} x {P}? Try other patch sizes")
options = patches.patch_size_options(H, W, lo=2)
if P not in options:
    options = sorted(set(options) | {P})
if st.session_state.get("patches_p") not in (None, *options):
    st.session_state["patches_p"] = P  # a size from another model or a hand-edited URL
choice = st.select_slider("Patch size P (pixels)", options=options, value=P, key="patches_p",
                          bind="query-params",
                          help="Only the model's own patch size runs through the network; the others "
                               "show what the token count and the attention cost would be.")
cur = patches.token_counts(H, W, choice, prefix)
ref = patches.token_counts(H, W, P, prefix)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Grid", f"{cur['gh']} x {cur['gw']}")
m2.metric("Patches N", f"{cur['N']:,}", delta=None if choice == P else f"{cur['N'] - ref['N']:+,} vs model",
          delta_color="off")
m3.metric("Tokens T = N + " + str(prefix), f"{cur['T']:,}")
m4.metric("Attention scores T²", f"{cur['T2']:,}",
          delta=None if choice == P else f"x{cur['T2'] / ref['T2']:.3g} vs model", delta_color="inverse")
st.caption(f"Each patch holds {C} x {choice} x {choice} = {C * choice * choice:,} numbers. "
           + ("**This is the patch size of the loaded model.**" if choice == P else
              f"The loaded model uses **P = {P}** (N = {ref['N']}, T = {ref['T']}, T² = {ref['T2']:,})."))

left, right = st.columns([5, 6])
with left:
    what_if = drawing.grid_overlay(a.image, choice, target=640)
    st.image(what_if, width="stretch")
    st.caption(f"{cur['gh']} x {cur['gw']} patches of {choice} x {choice} pixels.")
    png_button(what_if, f"grid-P{choice}.png", key="patches_dl_whatif")
with right:
    curve = patches.cost_curve(H, W, prefix, options)
    fig = go.Figure(go.Scatter(x=curve["patch"], y=curve["T2"], mode="lines+markers", name="T²",
                               line=dict(width=3, color="#1d4ed8"), marker=dict(size=10),
                               customdata=np.stack([curve["N"], curve["T"]], 1),
                               hovertemplate="P = %{x}<br>N = %{customdata[0]:,}<br>T = %{customdata[1]:,}"
                                             "<br>T² = %{y:,}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[P], y=[ref["T2"]], mode="markers+text", name="the model",
                             marker=dict(size=22, symbol="star", color="#c2410c"),
                             text=[f"model: P={P}"], textposition="top right", hoverinfo="skip"))
    if choice != P:
        fig.add_trace(go.Scatter(x=[choice], y=[cur["T2"]], mode="markers", name="your choice",
                                 marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(width=3, color="#111")),
                                 hoverinfo="skip"))
    fig.update_layout(font=figures.FONT, height=440, showlegend=False, margin=dict(l=10, r=10, t=50, b=10),
                      title="Attention cost per head and layer",
                      xaxis=dict(title="patch size P (pixels, log scale)", type="log",
                                 tickvals=figures.log_ticks(options, P)),
                      yaxis=dict(title="T² scores (log scale)", type="log", dtick=1, tickformat="~s"))
    figures.legible(fig)
    st.plotly_chart(fig, key="patches_cost", config={"toImageButtonOptions": {"format": "png", "scale": 2}})

one = patches.token_counts(H, W, 1, prefix)
st.markdown(
    f"Halving P makes **4x** as many patches, and the attention matrix (T x T) grows about **16x**. "
    f"At the other extreme, every pixel as a token (P = 1) would give T = {one['T']:,} and "
    f"T² = {one['T2']:,} scores per head and layer. ViT's answer is a compromise: patches are large enough "
    "to keep the sequence short, small enough to keep detail. The paper's models use P = 14, 16 or 32 "
    "(ViT-H/14, ViT-B/16, ViT-B/32): smaller patches cost more compute but are more accurate.")

code_box(patches.preprocess_plan, patches.token_counts, patches.patch_tiles)
