"""Appendix: self-attention with this model's real sizes, the T² terms, and a check against the model."""
import numpy as np
import pandas as pd
import streamlit as st

from pages._ui import cache
from pages._ui.present import page_link
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import font_size, header, row
from vit_core.analysis import attention_views
from vit_core.analysis import lecture as lec
from vit_core.render import figures

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("Appendix: self-attention",
       "The formula behind every attention map in this app (Vaswani et al., 2017), with the sizes of the "
       "model that is loaded right now, where each T² comes from, and a check that the formula is exactly "
       "what the model computed for your image.")

a = ctx.analysis()
L, h, T = a.depth, a.num_heads, a.num_tokens
d = a.head_dim
D = a.tokens.shape[-1]
M = int(cfg.embed_dim * cfg.mlp_ratio)
n = a.num_prefix_tokens

# The formula, the sizes and the next heading: one element (st.latex is this same "$$" block of Markdown).
FORMULA = (r"\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V, \qquad "
           r"\mathrm{MSA}(X) = [\,\mathrm{head}_1; \dots; \mathrm{head}_h\,]\, W_O")
st.markdown(f"$$\n{FORMULA}\n$$\n\n"
            f"This model: **T = {T}** tokens ({n} extra + {T - n} patches), width **D = {D}**, "
            f"**h = {h}** heads of **d_k = D / h = {d}** dimensions, **L = {L}** layers.\n\n"
            "### The shapes, one layer")
cache.table("app_shapes", (T, D, h, d), lambda: pd.DataFrame([
    ("X (LayerNorm of the tokens)", "T x D", f"{T} x {D}", f"{T * D:,}"),
    ("W_Q, W_K, W_V (all heads, one Linear D → 3D)", "D x 3D", f"{D} x {3 * D}", f"{3 * D * D:,}"),
    ("Q, K, V of one head", "T x d_k", f"{T} x {d}", f"{T * d:,} each"),
    ("Scores Q Kᵀ / √d_k of one head", "T x T", f"{T} x {T}", f"{T * T:,}"),
    ("Softmax over each row (rows sum to 1)", "T x T", f"{T} x {T}", f"{T * T:,}"),
    ("Output A V of one head", "T x d_k", f"{T} x {d}", f"{T * d:,}"),
    ("Heads side by side", "T x D", f"{T} x {h * d}", f"{T * h * d:,}"),
    ("W_O (output projection)", "D x D", f"{D} x {D}", f"{D * D:,}"),
], columns=["What", "Shape", "This model", "Numbers"]).set_index("What"))

st.subheader("Where T² appears")
fl = lec.layer_flops(T, D, M)
c1, c2, c3, c4 = row(4)
c1.metric("Scores per head and layer", f"{T * T:,}", help="T²")
c2.metric(f"All {h} heads x {L} layers", f"{T * T * h * L:,}", help="h · L · T²")
c3.metric("float32 memory for them", lec.human_bytes(lec.attention_bytes(T, h, L)))
c4.metric("Attention share of FLOPs", f"{fl.quadratic / fl.total:.0%}",
          help="4·T²·D of 24·T·D² + 4·T²·D per layer")
st.markdown(f"Two matrix products touch T² numbers: **Q Kᵀ** (T x d_k times d_k x T, {2 * T * T * d:,} FLOPs per "
            f"head) and **A V** (T x T times T x d_k, the same again). Everything else, the Q/K/V and output "
            f"projections and the MLP ({D} → {M} → {D}), is applied to each token on its own and grows only "
            f"linearly with T. Per layer: {lec.human_flops(fl.linear)} linear + {lec.human_flops(fl.quadratic)} "
            f"attention = **{lec.human_flops(fl.total)}**; the whole encoder about "
            f"{lec.human_flops(fl.total * L)} per image.\n\n"
            "### Check: the formula is what the model did")


@st.fragment
def check() -> None:
    """Layer and head: these controls rerun only this part."""
    # a wide gap: the layer slider's value sits at its right end, the head slider's at its left end,
    # and side by side they read as one number ("4 1"); one row, not columns with a spacer column
    k1, k2 = row(2, gap="xxlarge")
    layer = k1.slider(f"Layer (1 to {L})", 1, L, L, key="app_layer", bind="query-params") - 1
    head = k2.slider(f"Head (1 to {h})", 1, h, 1, key="app_head", bind="query-params") - 1
    # float64 NumPy on a T x T matrix (~20 ms on ViT-B) from the layer's q, k and attention (not kept in
    # the analysis: recomputed, shared): once per view, not on every rerun
    sm = cache.derived("app_softmax", (ctx.spec, ctx.sha, layer, head), lambda: attention_views.head_softmax(
        a, cache.layer_qkv(ctx.spec, ctx.sha, layer, a), layer, head, cache.layer_attention(ctx.spec, ctx.sha, layer, a)))
    fs = font_size()
    left, right = st.columns([3, 2])
    with left:
        fig = cache.chart("app_heat", (ctx.spec, ctx.sha, layer, head, fs), figures.heatmap,
                          sm.weights.astype("float32"), title=f"softmax(Q Kᵀ / √{d}), layer {layer + 1}, head {head + 1}", xlabel="key token",
                          ylabel="query token", height=460, font_size=fs)
        cache.plotly_chart(fig, key="app_heat", config=PLOTLY_CONFIG)
    with right:
        st.metric("Largest difference from the model's own attention", f"{sm.diff:.1e}")
        st.markdown(f"Recomputed here from the model's Q and K with NumPy in float64; the model computed it in "
                    f"float32 inside PyTorch. Each row sums to 1 (largest error {sm.row_sum_error:.0e}).\n\n"
                    f"**Why divide by √d_k?** A dot product of two d_k-dimensional vectors grows with d_k. Here "
                    f"the raw scores q·k have a standard deviation of **{sm.raw.std():.2f}**; divided by √{d} = "
                    f"{np.sqrt(d):.2f} they have **{sm.scores.std():.2f}**, which keeps the softmax from "
                    "saturating on a single key early in training.")
    page_link("pages/self_attention.py", "4 · Self-attention: this head, step by step",
              query_params={"sa_layer": str(layer + 1), "sa_head": str(head + 1)})


check()
