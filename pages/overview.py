"""Overview: the whole pipeline with this image flowing through it, with the model's real sizes."""
import numpy as np
import streamlit as st

from pages._ui import cache, present
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import code_box, font_size, header, png_later
from vit_core.analysis import explain, walk
from vit_core.analysis import lecture as lec
from vit_core.render import figures, views
from vit_core.render import walk as walk_view

INTRO = ("A Vision Transformer (Dosovitskiy et al., 2020) reads an image the way BERT reads a sentence: "
         "it cuts the image into square **patches**, turns each patch into a vector (a *word*), and lets "
         "every patch look at every other patch through **self-attention**. Below, your image goes through "
         "the model that is loaded right now; every number is computed live.")
PRESENT = present.is_present()  # projector: the pictures first, beside the introduction

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("An image is worth 16x16 words", "" if PRESENT else INTRO)

a = ctx.analysis() if PRESENT else ctx.analysis_with_status()

gh, gw = a.grid
P = a.patch_size
N = gh * gw
T = a.num_tokens
D = cfg.embed_dim
C = cfg.in_chans
H, W = a.image.shape[:2]
names = ctx.loaded.class_names

view = (ctx.spec, ctx.sha)
last = explain.patch_map(a, a.rollout[-1][0])


def patch_picture(label: str) -> None:
    st.markdown(label)
    st.image(cache.encoded("ov_grid", view, views.grid_view, a.image, P, url=True), width="stretch", output_format="JPEG")
    png_later(views.grid_view, a.image, P, filename="patch-grid.png", key="dl_grid")


def rollout_picture(label: str) -> None:
    st.markdown(label)
    st.image(cache.encoded("ov_rollout", view, figures.overlay, a.image, last, url=True), width="stretch",
             output_format="JPEG")
    png_later(figures.overlay, a.image, last, filename="rollout.png", key="dl_rollout")


if PRESENT:  # the slide's figures beside the introduction, on screen without scrolling
    lead, fig_col = st.columns([5, 6])
    lead.markdown(INTRO)
    with fig_col:
        p1, p2 = st.columns(2)
        with p1:
            patch_picture(f"**{N} patches of {P}x{P}**")
        with p2:
            rollout_picture("**Where [CLS] looked**")
        st.caption(f"Left: your image as the model sees it, cut into patches. Right: where [CLS] gathered its "
                   f"information from (attention rollout after all {cfg.depth} layers).")

steps = [
    ("Image", f"{C} x {H} x {W}", "after resize, crop and normalise"),
    ("Patches", f"{gh} x {gw} = {N} patches", f"each {C} x {P} x {P} = {C * P * P} values"),
    ("Patch embedding", f"{N} x {D}", f"one linear map {C * P * P} -> {D}"),
    ("+ [CLS] + positions", f"{T} x {D}", f"{T - N} extra token(s); learned position embeddings added"),
    (f"{cfg.depth} encoder blocks", f"{T} x {D}", f"{cfg.num_heads} heads of {D // cfg.num_heads} dims; "
                                                   f"{T}^2 = {T * T:,} attention scores per head"),
    ("[CLS] -> head", f"{D} -> {cfg.num_classes or 'features'}",
     "LayerNorm, then a linear layer to the classes" if cfg.num_classes else "feature extractor: no class head"),
]
boxes = "".join(
    f'<div class="vx-step"><div class="vx-t">{title}</div><div class="vx-s">{shape}</div>'
    f'<div class="vx-n">{note}</div></div>' + ('<div class="vx-arrow">&#10140;</div>' if i < len(steps) - 1 else "")
    for i, (title, shape, note) in enumerate(steps)
)
# The heading and the flow in one element (the HTML is one line: one raw HTML block of the markdown)
st.markdown(
    "### The shape of the computation\n\n"
    "<style>.vx-flow{display:flex;flex-wrap:wrap;align-items:stretch;gap:.4rem;margin-bottom:1rem}"
    ".vx-step{flex:1 1 9.5rem;border:2px solid #c2410c;border-radius:.6rem;padding:.5rem .7rem;background:#fff7ed}"
    ".vx-t{font-weight:700;font-size:1.05rem}.vx-s{font-size:1.3rem;font-weight:700;color:#9a3412;"
    "font-family:monospace;margin:.2rem 0}.vx-n{font-size:.95rem;color:#333}"
    ".vx-arrow{align-self:center;font-size:1.6rem;color:#c2410c}</style>"
    f'<div class="vx-flow">{boxes}</div>',
    unsafe_allow_html=True,
)

fs = font_size()


WALK_NO_BUTTONS = ["zoom2d", "pan2d", "select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d"]


def walk_figure(size: int):
    """Built once per (model, image, font size) by cache.chart and shared by every session."""
    # the main column is ~800 px wide beside the sidebar, ~1180 px on the projector: wraps each sentence
    return walk_view.walk_figure(walk.walk(a, ctx.loaded.model), names, font_size=size,
                                 width_px=1180 if PRESENT else 800)


# Built when opened (open by default on the projector): each new image's animation costs ~0.4 s to
# build and ~600 KB to send, which a class uploading 100 photos would pay on its first page.
walk_box = st.expander("Watch it once: your image through the ViT, animated", expanded=PRESENT, key="ov_walk_open",
                       on_change="rerun", icon=":material/play_circle:")
if walk_box.open:
    with walk_box:
        # zoom, pan and select do nothing useful on an animation: a short mode bar leaves the sentence clear
        cache.plotly_chart(cache.chart("ov_walk", view + (fs,), walk_figure, fs), key="ov_walk",
                           config=dict(PLOTLY_CONFIG, modeBarButtonsToRemove=WALK_NO_BUTTONS))
        st.caption(f"Press Play, or drag the slider. Every picture and number is a tensor of this image in the "
                   f"loaded model; the row of tokens shows {len(walk.shown_dims(D, T, walk.BUDGET))} of the {D} "
                   f"dimensions of each token.")

if not PRESENT:  # (shown at the top in presentation mode)
    left, mid, right = st.columns([1, 1, 1])
    with left:
        st.markdown("**1. The model's view of your image**")
        st.image(cache.encoded("ov_input", view, lambda: a.image, fmt="png", url=True), width="stretch", output_format="PNG")
    with mid:
        patch_picture(f"**2. Cut into {N} patches of {P}x{P}**")
    with right:
        rollout_picture(f"**3. Where [CLS] gathered information from** (rollout after {cfg.depth} layers)")

st.subheader("4. The prediction")
if a.probs.size:
    top = np.argsort(a.probs)[::-1][:5]
    labels = [ctx.class_name(i) for i in top]
    cache.plotly_chart(cache.chart("ov_top5", view + (fs,), figures.bar_chart, labels, a.probs[top],
                                title="Top-5 classes", font_size=fs), key="top5")
    st.markdown(f"The model says **{labels[0]}** with probability **{a.probs[top[0]]:.1%}**.")
else:
    st.info("This model has no classification head (a feature extractor, e.g. DINO): "
            "its attention maps are still meaningful.")

st.caption(f"Model: {lec.clause(ctx.loaded.description)}  ·  image: {ctx.image_name}  ·  device: {ctx.device}")
code_box(explain.analyze)
