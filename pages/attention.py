"""5 · Attention maps: [CLS] attention in every layer and head, any patch's attention, rollout, distance."""
from contextlib import nullcontext

import streamlit as st

from pages._ui import cache, present
from pages._ui.cache import cls_mosaic, distances, rollout
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import clamp_state, code_box, font_size, header, row, take_away
from vit_core.analysis import attention_views, explain, maps
from vit_core.analysis import lecture as lec
from vit_core.render import figures, recipes, style, views

INTRO = ("Each layer has several heads, and each head gives every token its own attention row over all "
         "tokens. Reading the row of **[CLS]**, the token the classifier uses, shows where the model "
         "gathers its evidence (Dosovitskiy et al., 2020, Fig. 6 and 7). Brighter means more attention. "
         "Single layers are noisy; **attention rollout** (Abnar & Zuidema, 2020) follows attention "
         "through all the layers.")
PRESENT = present.is_present()  # projector: the mosaic beside the introduction, sized to the screen

ctx = sidebar()
BESIDE = PRESENT and ctx.loaded.model.num_prefix_tokens > 0  # the introduction beside the [CLS] mosaic
header("5 · Attention maps", "" if BESIDE else INTRO)

a = ctx.analysis()
L, h, T, n = a.depth, a.num_heads, a.num_tokens, a.num_prefix_tokens
gh, gw = a.grid


for key, lo, hi in (("att_layer", 1, L), ("att_q", 0, T - 1), ("att_roll", 1, L)):
    clamp_state(key, lo, hi)
head_opts = ["mean"] + [str(i) for i in range(1, h + 1)]
if st.session_state.get("att_head", "mean") not in head_opts:
    del st.session_state["att_head"]
if "att_q" not in st.session_state and "att_q" not in st.query_params:
    st.session_state["att_q"] = n + (gh // 2) * gw + gw // 2  # start on the middle patch

if BESIDE:
    lead, fig_col = st.columns([5, 6])
    lead.markdown(INTRO)
    with lead:
        d1, d2 = row(2, border=True)
else:
    d1, d2 = row(2, border=True)
cmap = d1.selectbox("Colour map", figures.CMAPS, key="att_cmap", bind="query-params")
alpha = d2.slider("Opacity of the map", 0.0, 1.0, 0.6, 0.05, key="att_alpha", bind="query-params")
view = (ctx.spec, ctx.sha)
look = (cmap, float(alpha))  # the display options: part of every picture's key

if n == 0:
    st.info("This model has no [CLS] token (it averages the patch tokens), so the [CLS] maps and "
            "rollout are left out; click a patch below to see where it looks.")
else:
    title = f"Where [CLS] looks: all {L} layers x {h} heads"
    tile = max(48, min(160, 900 // h))
    mos, shown, width = cls_mosaic(ctx.spec, ctx.sha, cmap, float(alpha), tile, a)
    with fig_col if BESIDE else nullcontext():
        if BESIDE:  # beside the introduction, at most style.FOLD_PX tall: on screen without scrolling
            st.markdown(f"**{title}**")
            width = style.fit_width(mos.shape[1], mos.shape[0], style.FOLD_PX - 50, max_width=640)
        else:
            st.subheader(title)
        st.image(cache.picture_url("att_mosaic", (ctx.spec, ctx.sha, cmap, float(alpha), tile), shown), width=width,
                 output_format="JPEG")
        # Not the image's caption: a captioned image keeps its pixel width and overflows a phone.
        st.caption(f"Rows: layers L1 (input side) to L{L}; columns: heads H1 to H{h}. Each tile is "
                   "scaled to its own range, so compare shapes, not brightness, between tiles.")
        take_away("att_dl_mosaic", "cls-attention-layers-heads",
                  recipes.cls_mosaic(a, cmap, float(alpha), tile, mos), ctx)

st.subheader("Click a patch: where does it look?")


@st.fragment
def one_query() -> None:
    """Layer, head and query: these controls rerun only this part."""
    c1, c2, c3 = row(3, align="bottom")  # the query label wraps: the tracks still line up
    layer = c1.slider("Layer", 1, L, L, key="att_layer", bind="query-params") - 1
    head = c2.selectbox("Head", head_opts, format_func=lambda o: "mean of heads" if o == "mean" else f"head {o}",
                        key="att_head", bind="query-params")
    query = c3.slider(f"Query token (0 = [CLS]; patch p is token p + {n}; or click the image)" if n else
                      "Query token (patch p is token p; or click the image)", 0, T - 1, key="att_q",
                      bind="query-params")
    st.caption(f"Query: {attention_views.query_label(a, query)}")  # under the row: its places are widgets
    fs = font_size()
    left, right = st.columns(2)
    with left:
        sel = query - n if query >= n else None
        cache.plotly_chart(cache.chart("att_pick", view + (sel, fs), figures.patch_picker, a.image, a.grid, a.patch_size,
                                    sel, height=430, font_size=fs),
                        key="att_pick", selection_mode="points", config=PLOTLY_CONFIG,
                        on_select=lambda: figures.store_pick(st.session_state, "att_pick", "att_q", T - n, n))
    with right:
        qimg = recipes.query_attention(a, layer, head, query, *look)
        st.image(cache.encoded("att_query", view + (layer, head, query) + look, *qimg.png, url=True), width="stretch",
                 output_format="JPEG")
        rows = a.attn[layer, :, query].astype("float32")  # (h, T), from the stored float16
        att_row = rows.mean(0) if head == "mean" else rows[int(head) - 1]
        top = int(att_row[n:].argmax()) + n
        st.markdown(f"**{attention_views.token_label(a, query)}** in layer {layer + 1}, "
                    f"{'mean of heads' if head == 'mean' else 'head ' + head}: most attention "
                    f"({att_row[top]:.1%}) on {attention_views.token_label(a, top)}"
                    + (f"; {att_row[:n].sum():.1%} on [CLS]" + (" and registers" if n > 1 else "") if n else "") + "."
                    + (" The query patch is outlined in cyan." if query >= n else ""))
        take_away("att_dl_query", f"attention-L{layer + 1}-{head}-q{query}", qimg, ctx)
    hsel = "mean" if head == "mean" else int(head) - 1
    alike = cache.derived("att_alike", view + (hsel,), lambda: [attention_views.query_similarity(a, lyr, hsel)
                                                              for lyr in range(L)])
    most = min(range(L), key=lambda lyr: alike[lyr] if alike[lyr] == alike[lyr] else 2.0)
    if alike[layer] == alike[layer]:  # not NaN
        same = alike[layer] >= 0.8
        st.markdown(
            f"**Does the map follow the query?** It shows the chosen query's own attention row, but in layer "
            f"{layer + 1} ({'mean of heads' if head == 'mean' else 'head ' + head}) the maps of different query "
            f"patches correlate at **{alike[layer]:.2f}** on average (1 = identical): "
            + ("this layer looks at the same few patches whatever the query, so the map barely changes from click "
               "to click. That is the model, not the page" + (f": in layer {most + 1} they correlate at "
                                                             f"{alike[most]:.2f}." if most != layer else ".")
               if same else "each query looks somewhere of its own here."))
    strip_tile = max(48, min(120, 900 // h))
    strip = cache.encoded("att_strip", view + (layer, query, strip_tile) + look, views.query_strip, a, layer, query,
                          *look, strip_tile)
    st.image(cache.picture_url("att_strip", view + (layer, query, strip_tile) + look, strip),
             width=int(min(1400, 1.5 * figures.image_size(strip)[0])), output_format="JPEG",
             caption=f"The same query in every head of layer {layer + 1}.")


one_query()

if n:
    st.markdown("### Attention rollout: following attention through the layers\n\n"
                "Rollout first fuses the heads of each layer into one map (**head fusion**: their mean, "
                "maximum or minimum, entry by entry), adds the residual connection (0.5 A + 0.5 I), "
                "re-normalises each row and multiplies the layers together: R = A′ₗ … A′₁. Its [CLS] row "
                "says how much each patch has flowed into [CLS] so far. The **discard ratio** zeroes the "
                "weakest entries of each layer first. Scrub the layers to watch the information mix.")


@st.fragment
def rollout_view() -> None:
    """Rollout depth, fusion and discard ratio: these controls rerun only this part."""
    r1, r2, r3 = row(3, align="bottom")
    upto = r1.slider("Rollout after layer", 1, L, L, key="att_roll", bind="query-params")
    fusion = r2.selectbox("Head fusion", attention_views.FUSIONS, key="att_fusion", bind="query-params",
                          help=lec.GLOSSARY["head fusion"])
    discard = r3.slider("Discard ratio", 0.0, 0.95, 0.0, 0.05, key="att_discard", bind="query-params",
                        help=lec.GLOSSARY["discard ratio"])
    roll = rollout(ctx.spec, ctx.sha, fusion, float(discard), a)  # (L, T, T)
    roll_map = explain.patch_map(a, roll[upto - 1][0])
    raw = recipes.cls_layer(a, upto - 1, fusion, *look)
    rolled = recipes.rollout(a, roll, upto, fusion, float(discard), *look)
    g1, g2 = st.columns(2)
    with g1:
        st.markdown(f"**Raw [CLS] attention**, layer {upto} alone ({fusion} of heads)")
        st.image(cache.encoded("att_raw", view + (upto, fusion) + look, *raw.png, url=True), width="stretch",
                 output_format="JPEG")
        take_away("att_dl_raw", f"raw-cls-L{upto}-{fusion}", raw, ctx)
    with g2:
        st.markdown(f"**Rollout** after layers 1–{upto} ({fusion} fusion, discard {discard:.0%})")
        st.image(cache.encoded("att_roll", view + (upto, fusion, float(discard)) + look, *rolled.png, url=True),
                 width="stretch", output_format="JPEG")
        take_away("att_dl_roll", f"rollout-L{upto}-{fusion}-d{discard:.2f}", rolled, ctx)
    st.markdown(f"After {upto} layer(s), [CLS] still holds **{roll[upto - 1][0, 0]:.1%}** of its own "
                f"input; the patches hold {roll_map.sum():.1%}, the most ({roll_map.max():.1%}) on "
                f"{attention_views.token_label(a, int(roll_map.argmax()) + n)}.")


if n:
    rollout_view()

st.subheader("How far does each head look? (mean attention distance)")


@st.fragment
def distance_view() -> None:
    """The re-normalisation toggle reruns only this part."""
    renorm = st.toggle("Re-normalise each row after dropping [CLS] (count only patch-to-patch attention)",
                       key="att_renorm", bind="query-params")
    dist = distances(ctx.spec, ctx.sha, bool(renorm), a)  # (L, h)
    fs = font_size()
    fig = cache.chart("att_dist", view + (bool(renorm), fs), figures.distance_scatter, dist,
                      f"Mean attention distance, this image ({a.image.shape[0]} px across)", font_size=fs)
    cache.plotly_chart(fig, key="att_dist", config=PLOTLY_CONFIG)
    st.markdown(f"For each head: the attention-weighted distance in pixels between a query patch and the "
                f"patches it attends to, averaged over the {gh * gw} patch queries. Layer 1 spans "
                f"**{dist[0].min():.1f}–{dist[0].max():.1f} px** across heads, layer {L} "
                f"**{dist[-1].min():.1f}–{dist[-1].max():.1f} px**. In the paper (Fig. 7, right) some heads "
                "look far already in the first layers while others stay local, and the distance grows with "
                "depth. This is **one image**; the paper averages over many. Choice shown: "
                + ("rows **re-normalised** after dropping [CLS], so attention paid to [CLS] does not count as "
                   "short distance." if renorm else
                   "rows **not** re-normalised: attention paid to [CLS] simply drops out, which pulls "
                   "heads that attend to [CLS] towards zero."))


distance_view()
code_box(maps.cls_attention, maps.query_attention, maps.attention_rollout,
         maps.mean_attention_distance)
