"""6 · Prediction: top-k classes, the logit lens over the layers, and class-specific relevance maps."""
import numpy as np
import streamlit as st
import torch

from pages._ui import cache, present
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import code_box, font_size, header, row, take_away
from vit_core.analysis import attention_views, maps
from vit_core.analysis import lecture as lec
from vit_core.render import figures, recipes

INTRO = ("After the last block the **[CLS]** token goes through a LayerNorm and one linear layer, and a "
         "softmax turns the scores into class probabilities. Below: what the model predicts for your "
         "image, what it *would* predict if it stopped after each block, and which patches speak for "
         "a chosen class.")
PRESENT = present.is_present()  # projector: the top classes first, the introduction beside them

ctx = sidebar()
BESIDE = PRESENT and ctx.loaded.model.cfg.num_classes > 0  # the introduction goes beside the bars
header("6 · Prediction", "" if BESIDE else INTRO)
a = ctx.analysis()
names = list(ctx.loaded.class_names)
C, L, n = a.probs.size, a.depth, a.num_prefix_tokens
view = (ctx.spec, ctx.sha)
name = ctx.class_name
order = np.argsort(a.probs)[::-1]  # classes, most probable first


@st.fragment
def top_classes() -> None:
    """How many classes: the slider reruns only this part (the bars and the logit lens)."""
    def how_many() -> int:
        return st.slider("How many classes", 1, min(10, C), min(5, C), key="pred_k", bind="query-params")

    if BESIDE:  # the bars are the slide's figure: the introduction and the slider beside them
        left, right = st.columns([3, 2])
        with right:
            st.markdown(INTRO)
            k = how_many()
    else:
        k = how_many()
        left, right = st.columns([3, 2])
    top = maps.topk(torch.from_numpy(a.probs), k, [name(i) for i in range(C)])
    fs = font_size()
    with left:
        bars = cache.chart("pred_top", view + (k, fs), figures.bar_chart, [t[0] for t in top],
                           np.array([t[1] for t in top]), title=f"Top-{k} of {C} classes", font_size=fs)
        cache.plotly_chart(bars, key="pred_top", config=PLOTLY_CONFIG)
    with right:
        st.metric("Prediction", top[0][0], f"{top[0][1]:.1%} probability", delta_color="off",
                  delta_arrow="off")
        # one element for the runner-up and the sum
        st.markdown((f"Runner-up: **{top[1][0]}** ({top[1][1]:.1%}).\n\n" if k > 1 else "")
                    + f"Probabilities over all {C} classes sum to {a.probs.sum():.4f}.")

    st.subheader("The logit lens: what [CLS] predicts after each block", help=lec.GLOSSARY["logit lens"])
    st.markdown("Apply the model's final LayerNorm and head to [CLS] after block 1, 2, … as if the network "
                "stopped there (the *logit lens*, nostalgebraist 2020). Early blocks are often unsure; the "
                "answer firms up with depth.")
    show = order[: max(k, 2) if C > 1 else 1]
    z, cls_names = attention_views.lens_table(a, names, show)
    lens = cache.chart("pred_lens", view + (len(show), fs), figures.heatmap, z, x=cls_names,
                       y=[f"block {i}" for i in range(1, L + 1)], colorscale="Viridis",
                       title="Probability of the top classes after each block", zmin=0, zmax=1,
                       height=max(360, 90 + 42 * L), texttemplate="%{z:.0%}", font_size=fs)
    cache.plotly_chart(lens, key="pred_lens", config=PLOTLY_CONFIG)


@st.fragment
def relevance() -> None:
    """Colour map and the two classes: these controls rerun only this part."""
    s1, s2, s3 = row(3)
    cmap = s1.selectbox("Colour map", figures.CMAPS, key="pred_cmap", bind="query-params")
    c1 = s2.selectbox("Class A", opts, int(order[0]), format_func=name, key="pred_c1", bind="query-params")
    c2 = s3.selectbox("Class B", opts, int(order[min(1, C - 1)]), format_func=name, key="pred_c2",
                      bind="query-params")
    g0, g1, g2 = st.columns(3)
    if n:
        with g0:
            roll = recipes.rollout(a, a.rollout, L, "mean", 0.0, cmap, 0.6)
            st.markdown("**Rollout** (the same for any class)")
            st.image(cache.encoded("pred_roll", view + (cmap,), *roll.png, url=True), width="stretch", output_format="JPEG")
            take_away("pred_dl_roll", "rollout", roll, ctx)
    rel_maps = {}
    ready = all(cache.has_relevance(ctx.spec, ctx.sha, int(c)) for c in (c1, c2))
    if not ready and cache.param_count(ctx.spec) > cache.RELEVANCE_ON_REQUEST_PARAMS \
            and not st.session_state.get("pred_rel_on"):
        with g1:  # a class of 100 would otherwise queue 200 backward passes few of them look at
            st.button("Compute the relevance maps", key="pred_rel_go", icon=":material/play_arrow:",
                      on_click=lambda: st.session_state.update(pred_rel_on=True))
            st.caption("Each class map is a backward pass through this large model (about a second "
                       "on a CPU): computed when you ask, and then shared with everyone viewing this image.")
        return
    for col, cls, tag in ((g1, c1, "A"), (g2, c2, "B")):
        with col:
            try:
                with st.spinner(f"Back-propagating {name(cls)}…"):
                    rel_maps[tag] = cache.get_relevance(ctx.spec, ctx.sha, int(cls), ctx.image_bytes)
            except Exception as err:  # a class map must never break the page
                st.error(f"The relevance map for {name(cls)} could not be computed: {err}")
                continue
            img = recipes.relevance(a, rel_maps[tag], int(cls), cmap, 0.6)
            st.markdown(f"**{tag}: {name(cls)}** ({a.probs[cls]:.1%})")
            st.image(cache.encoded("pred_rel", view + (int(cls), cmap), *img.png, url=True), width="stretch",
                     output_format="JPEG")
            take_away(f"pred_dl_{tag}", f"relevance-{cls}", img, ctx)
    if len(rel_maps) == 2:
        ma, mb = rel_maps["A"].ravel(), rel_maps["B"].ravel()
        corr = float(np.corrcoef(ma, mb)[0, 1]) if ma.std() > 0 and mb.std() > 0 else float("nan")
        same = "the same class twice" if c1 == c2 else f"{name(c1)} vs. {name(c2)}"
        st.markdown(f"Correlation between the two relevance maps ({same}): **{corr:.2f}** "
                    "(1 = identical pattern). Each map is scaled to its own range.")


if C == 0:
    st.info("This model is a feature extractor (for example DINO): it has no classification head, "
            "so there are no class probabilities, no logit lens and no class-specific maps. Its "
            "attention maps on page 5 are still meaningful.")
else:
    if not BESIDE:
        st.subheader("The top classes")
    top_classes()
    best, best_p = attention_views.lens_top(a)
    st.markdown("Top class after each block: " + " · ".join(
        f"{i + 1}: **{name(int(c))}** {p:.0%}" for i, (c, p) in enumerate(zip(best, best_p))))
    st.success(f"Check: after the last block the lens gives exactly the model's output "
               f"(max difference {attention_views.lens_vs_output(a):.1e}).")

RELEVANCE = "Which patches speak for a class? (Chefer et al., 2021)"
if C and n == 0:
    st.subheader(RELEVANCE)
    st.info("This model has no [CLS] token (it averages the patch tokens). Class-specific relevance "
            "reads the [CLS] row of the relevance matrix, so it is left out for this model.")
elif C:
    # the heading and its paragraph: one element (the help icon still ends the paragraph)
    st.markdown(f"### {RELEVANCE}\n\n"
                "Rollout (page 5) is the same whatever the class. The relevance method of Chefer, Gur & Wolf "
                "(2021, *Generic Attention-model Explainability*) back-propagates one class's score "
                "to every attention map, keeps the positive part of gradient x attention, averages the heads, "
                "and accumulates it over the layers: **R ← R + Ā R**, where R starts as the identity (each token "
                "relevant only to itself), Ā is that layer's gradient-weighted attention, and each layer adds "
                "the relevance that flows through it; the [CLS] row of the final R is the map. Different "
                "classes give different maps.", help=lec.GLOSSARY["relevance update"])
    opts = list(range(C))
    for key, default in (("pred_c1", int(order[0])), ("pred_c2", int(order[min(1, C - 1)]))):
        if st.session_state.get(key, default) not in range(C):
            del st.session_state[key]
    relevance()
code_box(maps.topk, maps.logit_lens, maps.class_relevance)
