"""Why not pixels as tokens: the cost of self-attention grows with the square of the sequence length."""
import pandas as pd
import streamlit as st

from pages._ui import cache
from pages._ui.present import page_link
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import font_size, header, row
from vit_core.analysis import lecture as lec
from vit_core.render import lecture_charts

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("Why not pixels as tokens?",
       "A Transformer compares **every token with every other token**. In BERT a token is a word and a "
       "sentence has a few hundred of them. The obvious way to feed an image is to make every pixel a token, "
       "but then the sequence is enormous, and the attention matrix grows with the **square** of its length.")

# The lecture's example, always at 224 x 224 (ViT-B/16).
values = lec.pixel_tokens(224)  # 3 * 224 * 224
vit_t = lec.num_tokens(224, 16)  # 197
big, small = lec.attention_entries(values), lec.attention_entries(vit_t)
c1, c2, c3 = row(3)
c1.metric("Every colour value a token", f"{big:,}", help=f"(3 x 224 x 224)^2 = {values:,}^2")
c2.metric("16 x 16 patches + [CLS]", f"{small:,}", help="(14 x 14 + 1)^2 = 197^2")
c3.metric("Ratio", f"{big / small:,.0f} x")
# The formula (the "$$" block st.latex would send), what it counts and the next heading: one element.
formula = (rf"(3 \cdot 224 \cdot 224)^2 = {values:,}^2 = {big:,} \approx {big / 1e9:.1f}\ \text{{billion}}"
           rf"\qquad\text{{vs.}}\qquad 197^2 = {small:,}".replace(",", "{,}"))
st.markdown(f"$$\n{formula}\n$$\n\n"
            f"Attention scores in one head of one layer, for a 224 x 224 RGB image: about {lec.human_count(big)} "
            f"against {small:,}. Even one pixel per token "
            f"(RGB together) gives {lec.attention_entries(lec.pixel_tokens(224, per_value=False)):,} scores.\n\n"
            "### Try it: the cost for any image and patch size")


@st.fragment
def calculator() -> None:
    """Image size, patch size and model, and what they cost: the three controls rerun only this part."""
    k1, k2, k3 = row(3)
    size = k1.select_slider("Image size (pixels per side)", [32, 64, 96, 128, 160, 224, 256, 384, 512, 1024],
                            value=224, key="px_size", bind="query-params")
    patch = k2.select_slider("Patch size P (1 = single pixels)", [1, 2, 4, 7, 8, 14, 16, 28, 32], value=16,
                             key="px_patch", bind="query-params")
    names = [v.name for v in lec.VARIANTS]
    ref_name = k3.selectbox("Model for memory and FLOPs", names, key="px_model", bind="query-params")
    ref = lec.variant(ref_name)

    rows = [
        lec.sequence_cost("every colour value a token", lec.pixel_tokens(size), ref.width, ref.heads, ref.layers,
                          ref.mlp),
        lec.sequence_cost("every pixel a token (RGB)", lec.pixel_tokens(size, per_value=False), ref.width,
                          ref.heads, ref.layers, ref.mlp),
        lec.sequence_cost(f"{patch} x {patch} patches + [CLS]", lec.num_tokens(size, patch), ref.width, ref.heads,
                          ref.layers, ref.mlp),
    ]

    def cost_table() -> pd.DataFrame:
        return pd.DataFrame({
            "Tokens": [f"{r.tokens:,}" for r in rows],
            "Scores (1 head, 1 layer)": [f"{r.entries:,}" for r in rows],
            "Memory, 1 head": [lec.human_bytes(r.bytes_one_head) for r in rows],
            f"Memory, {ref.heads} heads x {ref.layers} layers": [lec.human_bytes(r.bytes_all) for r in rows],
            "FLOPs per layer": [lec.human_flops(r.flops.total) for r in rows],
            "Share in T² terms": [f"{r.flops.quadratic / r.flops.total:.0%}" for r in rows],
        }, index=[r.label for r in rows])

    cache.table("px_costs", (size, patch, ref_name), cost_table)
    # one caption for both notes
    crop = (f"{size} is not a multiple of {patch}: the last {size % patch} pixels of each side would be "
            "cropped.\n\n" if size % patch else "")
    st.caption(crop + f"Memory counts only the attention matrices (float32: 4 bytes per score) of {ref.name} "
               f"(D = {ref.width}, {ref.heads} heads, {ref.layers} layers), as a forward pass with the "
               "probabilities kept would hold them. FLOPs count a multiply-add as 2: the linear layers cost "
               "24·T·D², the attention 4·T²·D per layer.")

    fs = font_size()
    sizes = [p for p in (1, 2, 4, 8, 14, 16, 28, 32) if p <= size]
    left, right = st.columns(2)
    with left:
        bars = cache.chart("px_bars", (size, patch, fs), lecture_charts.score_bars, [r.label for r in rows],
                           [r.entries for r in rows], [lec.human_count(r.entries) for r in rows], font_size=fs)
        cache.plotly_chart(bars, key="px_bars", config=PLOTLY_CONFIG)
    with right:
        curve = cache.chart("px_curve", (size, patch, fs), lecture_charts.patch_size_curve, sizes,
                            [lec.attention_entries(lec.num_tokens(size, p)) for p in sizes], patch, rows[-1].entries,
                            size, font_size=fs)
        cache.plotly_chart(curve, key="px_curve", config=PLOTLY_CONFIG)


calculator()

st.markdown(f"""
**Why the square?** Self-attention scores every (query, key) pair: with T tokens that is T x T numbers per
head and layer. Double the side of the image and T grows 4 x, the attention 16 x. Patches cut T by P² (256 x
for 16 x 16), so the attention shrinks by P⁴ (65,536 x).

**What earlier work did instead.** Image GPT (Chen et al., 2020) did use pixels as tokens, and had to shrink
images to at most 64 x 64. Others restricted attention to local neighbourhoods or used 2 x 2 patches on small
images. ViT's answer is blunt: 16 x 16 patches and full global attention from the first layer on.

**The model loaded now** ({lec.clause(ctx.loaded.description)}): {cfg.img_size} x {cfg.img_size} images in
{cfg.patch_size} x {cfg.patch_size} patches → T = {cfg.num_patches + cfg.num_prefix_tokens} tokens →
{(cfg.num_patches + cfg.num_prefix_tokens) ** 2:,} scores per head, {cfg.num_heads} heads, {cfg.depth} layers.
""")
page_link("pages/patches.py", "1 · Patches: cut your image into words")
