"""4 · Self-attention: one attention row of the real model, recomputed step by step from q, k, v."""
import streamlit as st

from pages._ui import cache, present
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import clamp_state, code_box, font_size, header, row, take_away
from vit_core.analysis import attention_views, patches
from vit_core.model import Attention
from vit_core.render import figures, recipes

INTRO = ("Every token asks a question (its **query** q), every token offers a label (its **key** k) and "
         "a message (its **value** v). The query is compared with every key, the scores go through a "
         "softmax, and the token receives the weighted sum of the values: "
         "softmax(q Kᵀ / √d) V (Vaswani et al., 2017). Below is one such row from the model that is "
         "loaded, for one layer, one head and one query token of your image, recomputed by hand from "
         "the model's own q, k and v.")
PRESENT = present.is_present()  # projector: the picker first, the introduction and the controls beside it

ctx = sidebar()
header("4 · Self-attention", "" if PRESENT else INTRO)

a = ctx.analysis()
L, h, T, n = a.depth, a.num_heads, a.num_tokens, a.num_prefix_tokens
hd = a.head_dim
view = (ctx.spec, ctx.sha)


def _cls() -> None:
    st.session_state["sa_q"] = 0


for key, hi in (("sa_layer", L), ("sa_head", h), ("sa_q", T - 1)):
    clamp_state(key, 0, hi)


@st.fragment
def one_row() -> None:
    """Layer, head and query, and everything they drive: these controls rerun only this part."""
    def controls(stacked: bool) -> tuple[int, int, int]:
        """Layer and head side by side (far enough apart that their numbers never touch), then the
        query: beside them in one row, or under them when ``stacked`` in a column. Its caption goes
        under the row."""
        if stacked:
            c1, c2 = row(2, gap="large")
            c3 = st  # the query under the row, full width
        else:
            c1, c2, c3 = row(3, gap="large", align="bottom")  # the query label wraps
        layer = c1.slider("Layer", 1, L, key="sa_layer", bind="query-params") - 1
        head = c2.slider("Head", 1, h, key="sa_head", bind="query-params") - 1
        query = c3.slider(f"Query token (0 = [CLS]; patch p is token p + {n}; or click a patch)" if n else
                          "Query token (patch p is token p; or click a patch)", 0, T - 1, key="sa_q",
                          bind="query-params")
        st.caption(f"Query: {attention_views.query_label(a, query)}")
        return layer, head, query

    formula = (r"\text{score}_j = \frac{q \cdot k_j}{\sqrt{d}}, \qquad "
               r"w_j = \frac{e^{\text{score}_j}}{\sum_i e^{\text{score}_i}}, \qquad "
               r"\text{out} = \sum_j w_j\, v_j")
    if PRESENT:  # the picker is the first figure: beside the introduction and the controls, not below
        left, right = st.columns([1, 1])
        with right:
            st.markdown(INTRO)
            layer, head, query = controls(stacked=True)
    else:
        layer, head, query = controls(stacked=False)
        st.latex(formula)
        left, right = st.columns([1, 1])
    qkv = cache.layer_qkv(ctx.spec, ctx.sha, layer, a)  # not kept in the analysis: recomputed, shared
    s = attention_views.attention_step(a, qkv, layer, head, query, cache.layer_attention(ctx.spec, ctx.sha, layer, a))
    fs = font_size()
    qview = view + (layer, head, query)

    with left:
        sel = query - n if query >= n else None
        cache.plotly_chart(cache.chart("sa_pick", view + (sel, fs), figures.patch_picker, a.image, a.grid, a.patch_size,
                                    sel, height=420, font_size=fs),
                        key="sa_pick", selection_mode="points", config=PLOTLY_CONFIG,
                        on_select=lambda: figures.store_pick(st.session_state, "sa_pick", "sa_q", T - n, n))
        if n:
            st.button("Use [CLS] as the query", on_click=_cls, key="sa_cls")
    with right:
        st.markdown(f"#### Query: **{attention_views.query_label(a, query)}** · layer {layer + 1} · "
                    f"head {head + 1}\n\n"
                    f"This head works in **d = {hd}** dimensions. The query is compared with all **T = {T}** "
                    f"tokens ({n} prefix + {T - n} patches), so this head scores **{T * T:,}** pairs "
                    "in this layer.")
        m1, m2, m3 = row(3)
        m1.metric("Highest score", f"{s.scores.max():.2f}", help=attention_views.token_label(a, s.best_key))
        m2.metric("Its weight", f"{s.weights.max():.1%}")
        m3.metric("Weights sum to", f"{s.weights.sum():.4f}")
        st.caption(f"Highest-scoring key: {attention_views.token_label(a, s.best_key)}.")

    if PRESENT:
        st.latex(formula)
    st.subheader("1 · The query and a key")
    best = attention_views.token_label(a, s.best_key)
    cache.plotly_chart(cache.chart("sa_qk", qview + (fs,), figures.vector_bars,
                                {"q (query)": s.q, f"k of {best}": s.k[s.best_key]},
                                f"q and the key it matches best ({hd} numbers each)", font_size=fs),
                    key="sa_qk", config=PLOTLY_CONFIG)
    st.markdown(f"Multiply the two vectors number by number and add up: q · k = "
                f"**{s.scores[s.best_key] * hd ** 0.5:.2f}**; divided by √{hd} = {hd ** 0.5:.2f} this is the "
                f"score **{s.scores[s.best_key]:.2f}**. The same is done for every one of the {T} keys.")

    st.subheader("2 · Scores and 3 · softmax, over the image")
    scores = recipes.attention_row(a, s, layer, head, query, "scores")
    weights = recipes.attention_row(a, s, layer, head, query, "weights")
    g1, g2 = st.columns(2)
    with g1:
        st.markdown(f"**Scores** q·k/√d: {s.scores[n:].min():.2f} (dark) to {s.scores[n:].max():.2f} (bright)")
        st.image(cache.encoded("sa_scores", qview, *scores.png, url=True), width="stretch", output_format="JPEG")
        if n:
            st.markdown(f"Score of the **[CLS]** key: **{s.scores[0]:.2f}**"
                        + (f"; registers: {', '.join(f'{x:.2f}' for x in s.scores[1:n])}" if n > 1 else ""))
        take_away("sa_dl_scores", f"scores-L{layer + 1}-H{head + 1}-q{query}", scores, ctx)
    with g2:
        st.markdown(f"**Softmax weights**: up to {s.weights[n:].max():.1%} on one patch")
        st.image(cache.encoded("sa_weights", qview, *weights.png, url=True), width="stretch", output_format="JPEG")
        st.markdown(f"All patches together: **{s.weights[n:].sum():.1%}**"
                    + (f"; [CLS]: **{s.weights[0]:.1%}**" if n else ""))
        take_away("sa_dl_softmax", f"softmax-L{layer + 1}-H{head + 1}-q{query}", weights, ctx)
    st.success(f"Check: these softmax weights, recomputed here from q and k, match the model's own attention "
               f"row (attn[layer {layer + 1}, head {head + 1}, query {query}]) to within "
               f"**{s.softmax_diff:.1e}** (max difference).")

    st.subheader("4 · The weighted sum of the values")
    cache.plotly_chart(cache.chart("sa_out", qview + (fs,), figures.vector_bars,
                                {"Σ wⱼ vⱼ (recomputed here)": s.out, "attn @ v (the model's)": s.out_ref},
                                f"What this head sends back to {attention_views.token_label(a, query)}",
                                font_size=fs),
                    key="sa_out", config=PLOTLY_CONFIG)
    st.markdown(f"Max difference between the two: **{s.out_diff:.1e}**. The {h} heads' outputs "
                f"({h} x {hd} = {h * hd} numbers) are concatenated and mixed by one linear layer; "
                "the result is added to the token (the residual connection).")


one_row()

st.markdown("### Why patches, not pixels: attention costs T²\n\n"
            "Every token scores every other token, so the attention matrix has T x T entries, per head "
            "and per layer. Try other sizes:")


@st.fragment
def cost() -> None:
    """The image and patch size: these inputs rerun only this part."""
    k1, k2 = row(2)
    size = k1.number_input("Image size (pixels per side)", 16, 2048, 224, step=16, key="sa_img",
                           bind="query-params")
    patch = k2.number_input("Patch size", 1, 64, 16, key="sa_patch", bind="query-params")
    if size % patch:
        st.warning(f"{patch} does not divide {size}: the last {size % patch} pixels of each side are cropped.")
    tc = patches.token_cost(int(size), int(patch))
    r1, r2, r3 = row(3)
    r1.metric("Tokens T (patches + [CLS])", f"{tc.tokens:,}")
    r2.metric("Attention entries T²", f"{tc.entries:,}")
    r3.metric("Pixels as tokens: (3·S·S)²", f"{tc.pixel_entries:,}")
    st.markdown(f"Treating every pixel value as a token would mean {tc.pixel_tokens:,} tokens and "
                f"**{tc.pixel_entries / 1e9:,.1f} billion** entries: {tc.ratio:,.0f} times more than with "
                f"{patch}x{patch} patches, {tc.pixel_entries * 4 / 1e9:,.1f} GB in float32 for one head of one "
                f"layer. This model: T = {T}, so {T * T:,} entries per head, x {h} heads x {L} layers "
                f"= {T * T * h * L:,} per image.")


cost()
code_box(Attention.explicit, attention_views.attention_step, patches.token_cost)
