"""1 · Patches: from the uploaded picture to a sequence of patch tokens, with the model's real sizes."""
import streamlit as st

from pages._ui import cache, present
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import code_box, font_size, header, row, take_away
from vit_core.analysis import patches
from vit_core.io import images
from vit_core.render import charts, drawing, figures, recipes, style

INTRO = ("A Transformer reads a sequence of tokens. The Vision Transformer (Dosovitskiy et al., 2020) makes "
         "one out of an image in the simplest way possible: it resizes the image to a fixed size, cuts it into "
         "square **patches** of P x P pixels and reads them like words, left to right, top to bottom. "
         "This page does exactly that with your image and the model that is loaded now.")
PRESENT = present.is_present()  # projector: the numbered grid first, beside the introduction

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("1 · Patches", "" if PRESENT else INTRO)

a = ctx.analysis() if PRESENT else ctx.analysis_with_status()

gh, gw = a.grid
P = a.patch_size
N = gh * gw
T = a.num_tokens
prefix = a.num_prefix_tokens
H, W = a.image.shape[:2]
C = cfg.in_chans
view = (ctx.spec, ctx.sha)
count = min(N, 2 * gw, 23)
numbered = recipes.patch_grid(a, drawing.numbered_grid, P, max(1, 720 // max(H, W)), count)
READING = (f"Each patch gets a number in **reading order**: row by row, left to right. Patch 0 is the "
           f"top-left corner, patch {gw - 1} ends the first row, patch {N - 1} is the bottom-right corner. "
           f"**The numbering used on every page:** {patches.convention(gw, N, prefix)}")


def numbered_grid(width) -> None:
    """The grid with the first patches numbered and tinted, and its download."""
    st.image(cache.encoded("patches_numbered", view, *numbered.png, url=True), width=width, output_format="JPEG")
    take_away("patches_dl_grid", "numbered-patches", numbered, ctx)


if PRESENT:  # the numbered grid is the slide's figure: beside the introduction, fitted to the screen
    lead, fig_col = st.columns([5, 6])
    lead.markdown(INTRO + "\n\n" + READING)
    with fig_col:
        numbered_grid(style.fit_width(*figures.image_size(cache.encoded("patches_numbered", view, *numbered.png)),
                                      max_width=640))

# --- 1. preprocessing ----------------------------------------------------------------------------
st.subheader("Step 1: the model's view of your image")
original = images.load_image(ctx.image_bytes)
plan = patches.preprocess_plan(ctx.loaded.transform, original.width, original.height, ctx.loaded.data_config)
whole = plan.crop_box is not None and patches.keeps_everything(plan.crop_box, original.width, original.height)

left, right = st.columns(2)
with left:
    kept = (" (the model keeps all of it)" if whole else
            " (the cyan box is the part the model keeps)" if plan.crop_box is not None else "")
    st.markdown(f"**Your image**: {original.width} x {original.height} pixels{kept}")
    crop = recipes.preprocess(a, ctx.image_bytes, plan.crop_box, whole)
    st.image(cache.encoded("patches_orig", view, *crop.png, url=True), width="stretch", output_format="JPEG")
    take_away("patches_dl_orig", "original-with-crop", crop, ctx)
with right:
    st.markdown(f"**What the model sees**: {W} x {H} pixels, cut into {gh} x {gw} patches")
    model_view = recipes.patch_grid(a, drawing.grid_overlay, P, 640)
    st.image(cache.encoded("patches_view", view, *model_view.png, url=True), width="stretch", output_format="JPEG")
    take_away("patches_dl_view", "model-view", model_view, ctx)

rows = [f"| {i} | **{s.name}** | {s.text} |" for i, s in enumerate(plan.steps)]
chan = "RGB"[:len(plan.mean)] if len(plan.mean) <= 3 else "".join(str(i) for i in range(len(plan.mean)))
mean_s = ", ".join(f"{c} {m:.3f}" for c, m in zip(chan, plan.mean))
std_s = ", ".join(f"{c} {s:.3f}" for c, s in zip(chan, plan.std))
st.markdown("The preprocessing comes from the model's own data configuration (the same steps it was "
            "trained and evaluated with):\n\n| | step | here |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"Normalising subtracts the mean **({mean_s})** and divides by the standard deviation "
            f"**({std_s})**, so the numbers the network gets range from **{a.patches.min():.2f}** to "
            f"**{a.patches.max():.2f}** for this image, not 0 to 255. The picture on the right undoes the "
            "normalisation so that you can look at it.")

# --- 2. the grid and the sequence ------------------------------------------------------------------
if PRESENT:  # the grid is at the top of the slide
    st.markdown(f"### Step 2: {N} patches, read like words\n\n"
                f"The grid at the top of the page, read as a **sequence** of {N} tokens, just like a sentence "
                f"of {N} words" + (", with one extra learned **[CLS]** token in front (borrowed from BERT) whose "
                                    "output will carry the answer:" if prefix else ":"))
else:
    st.subheader(f"Step 2: {N} patches, read like words")
    left, right = st.columns([3, 2])
    with left:
        numbered_grid("stretch")
    with right:
        st.markdown(READING + f"\n\nThe model then sees a **sequence** of {N} tokens, just like a sentence of "
                    f"{N} words"
                    + (", and puts one extra learned **[CLS]** token in front (borrowed from BERT) whose output "
                       "will carry the answer." if prefix else
                       ". This model has no [CLS] token: it averages the patch tokens at the end."))
seq = recipes.patch_grid(a, drawing.token_sequence, P, count, -(-(count + int(prefix > 0)) // 2), 80, prefix > 0)
st.image(cache.encoded("patches_seq", view, *seq.png, url=True), width="stretch", output_format="JPEG",
         caption=f"The first {count} of {N} patch tokens (tinted in the grid above)"
                 + (", with [CLS] in front. " if prefix else ". ") + f"In total: T = {N} + {prefix} = {T} tokens.")
take_away("patches_dl_seq", "token-sequence", seq, ctx)
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


@st.fragment
def what_if() -> None:
    """Another patch size: the slider reruns only this part."""
    choice = st.select_slider("Patch size P (pixels)", options=options, value=P, key="patches_p",
                              bind="query-params",
                              help="Only the model's own patch size runs through the network; the others "
                                   "show what the token count and the attention cost would be.")
    cur = patches.token_counts(H, W, choice, prefix)
    ref = patches.token_counts(H, W, P, prefix)
    m1, m2, m3, m4 = row(4)
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
        grid = recipes.patch_grid(a, drawing.grid_overlay, choice, 640)
        st.image(cache.encoded("patches_whatif", view + (choice,), *grid.png, url=True), width="stretch",
                 output_format="JPEG", caption=f"{cur['gh']} x {cur['gw']} patches of {choice} x {choice} pixels.")
        take_away("patches_dl_whatif", f"grid-P{choice}", grid, ctx)
    with right:
        fs = font_size()
        fig = cache.chart("patches_cost", (ctx.spec, H, W, choice, fs), charts.patch_cost,
                          patches.cost_curve(H, W, prefix, options), P, ref["T2"], choice, cur["T2"], font_size=fs)
        cache.plotly_chart(fig, key="patches_cost", config=PLOTLY_CONFIG)


what_if()

one = patches.token_counts(H, W, 1, prefix)
st.markdown(
    f"Halving P makes **4x** as many patches, and the attention matrix (T x T) grows about **16x**. "
    f"At the other extreme, every pixel as a token (P = 1) would give T = {one['T']:,} and "
    f"T² = {one['T2']:,} scores per head and layer. ViT's answer is a compromise: patches are large enough "
    "to keep the sequence short, small enough to keep detail. The paper's models use P = 14, 16 or 32 "
    "(ViT-H/14, ViT-B/16, ViT-B/32): smaller patches cost more compute but are more accurate.")

code_box(patches.preprocess_plan, patches.token_counts, patches.patch_tiles)
