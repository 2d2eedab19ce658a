"""What if? Change the input or the model and watch the prediction: hide patches, shuffle them, drop
the position embeddings, read the mean of the patch tokens, resize; check whether the maps tell the
truth (deletion/insertion, model randomisation); follow one patch through the layers. The last two
sections, and the helpers every section shares, are in pages/_ui/what_if_view.py."""
import numpy as np
import streamlit as st

from pages._ui import what_if_cache
from pages._ui.present import page_link
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import clamp_state, header, png_later, row
from pages._ui.what_if_view import MODE_NAMES, NAMES, POS_NAMES, View, patch_section, truth_section
from vit_core.analysis import faithfulness, interventions
from vit_core.render import figures
from vit_core.render import whatif_figures as wf

ctx = sidebar()
header("What if?",
       "Change one thing and watch the prediction: hide patches, shuffle them, take away the position "
       "embeddings, read the answer from the patch tokens instead of [CLS], or feed a larger or smaller "
       "image. Then put the explanation maps to the test, and follow one patch through the layers.")
v = View(ctx, ctx.analysis())
a, n, P, N, C, S0, pred = v.a, v.n, v.P, v.N, v.C, v.S0, v.pred
gh, gw = v.grid
name, run, verdict, exports, top5, with_rollout = v.name, v.run, v.verdict, v.exports, v.top5, v.with_rollout


# --- hide patches ------------------------------------------------------------------------------
def toggle(chart_key: str) -> None:
    """A click on the picker hides the patch, or shows it again; then a fresh picker (no selection)."""
    idx = figures.selected_point(st.session_state.get(chart_key))
    if idx is not None and 0 <= idx < N:
        st.session_state["wi_masked"] = sorted(set(st.session_state.get("wi_masked", [])) ^ {idx})
        st.session_state["wi_pick_v"] = st.session_state.get("wi_pick_v", 0) + 1


@st.fragment
def hide_section() -> None:
    st.markdown("### Hide patches\n\n"
                "A ViT sees nothing but its sequence of patch tokens (paper Sec. 3.1), so hiding a patch takes "
                "one word out of its sentence: if the prediction survives, the evidence was elsewhere. "
                "Rollout (on the hidden image) shows where [CLS] looks instead.")
    page_link("pages/patches.py", "1 · Patches: how the image becomes tokens")
    c1, c2 = row(2)
    how = c1.radio("What to hide", ["click", "topk"], horizontal=True, key="wi_hide", bind="query-params",
                   format_func={"click": "patches I click", "topk": "top-k of a map vs k random"}.get,
                   width="stretch")
    mode = c2.selectbox("Hidden patches show", interventions.MASK_MODES, format_func=MODE_NAMES.get,
                        key="wi_mode", bind="query-params")
    if how == "click":
        clicked(mode)
    else:
        top_vs_random(mode)


def clicked(mode: str) -> None:
    if any(not 0 <= p < N for p in st.session_state.get("wi_masked", [])):  # left by a model with more patches
        st.session_state["wi_masked"] = [p for p in st.session_state["wi_masked"] if 0 <= p < N]
    left, right = st.columns(2)
    with left:
        picker = st.container(key="wi_picker")  # drawn after the list below, which holds the state
        masked = st.multiselect("Hidden patches, row by row from 0 (click the image to add or remove)",
                                list(range(N)), key="wi_masked", bind="query-params")
        st.button("Show every patch again", key="wi_clear", disabled=not masked,
                  on_click=lambda: st.session_state.update(wi_masked=[]))
        key = f"wi_pick_{st.session_state.get('wi_pick_v', 0)}"
        fig = v.chart("wi_mask_pick", (tuple(masked),), wf.mask_picker, a.image, a.grid, P, masked)
        picker.plotly_chart(fig, key=key, selection_mode="points", config=PLOTLY_CONFIG,
                            on_select=lambda: toggle(key))
    with right:
        with st.spinner("Running the model on the hidden image…"):
            r = run(masked, mode)
        st.markdown(f"{len(masked)} of {N} patches hidden. Prediction: " + verdict(r))
        st.image(v.rollout_picture(r), width="stretch", caption="What the model sees, with its rollout")
        exports("hidden", {"hidden": np.array(masked, int), "probs": r.probs, "rollout": r.rollout},
                f"xh = iv.mask_patches(x, {masked}, {P}, {mode!r})\nr = iv.run(model, xh, lm.data_config)\n"
                "print(r.probs.argmax(), r.probs.max())", (with_rollout, r))
    if C:
        top5(r, "wi_top5_hidden", f"Top-{min(5, C)} with {len(masked)} patches hidden")


def top_vs_random(mode: str) -> None:
    methods = faithfulness.METHODS if v.has_cls else ()
    if not methods:
        st.info("This model has no [CLS] token, and every map here reads the [CLS] row.")
        return
    clamp_state("wi_k", 1, N - 1)
    c1, c2, c3 = row(3)
    method = c1.selectbox("Map", methods, index=1, format_func=NAMES.get, key="wi_map", bind="query-params")
    k = c2.slider("k (patches hidden)", 1, N - 1, max(1, N // 10), key="wi_k", bind="query-params")
    seed = c3.number_input("Seed of the random patches", 0, 9999, 0, key="wi_seed", bind="query-params")
    with st.spinner(f"Computing the {NAMES[method]} map…"):
        sal = what_if_cache.wi_saliency(ctx.spec, ctx.sha, method, ctx.image_bytes)
    top, rnd = interventions.top_patches(sal, k), interventions.random_patches(N, k, int(seed))
    r_top, r_rnd = run(top, mode), run(rnd, mode)
    cols = st.columns(3)
    shown = {"map": (r_top, f"wi_topk_map_{method}", lambda: figures.overlay(v.big, sal, "inferno", 0.6)),
             "top": (r_top, "wi_topk_hidden", wf.hidden_view, r_top.image, top, P),
             "random": (r_rnd, "wi_topk_hidden", wf.hidden_view, r_rnd.image, rnd, P)}
    titles = {"map": f"The {NAMES[method]} map", "top": f"Its top {k} hidden", "random": f"{k} random hidden"}
    for col, (key, (r, kind, build, *args)) in zip(cols, shown.items()):
        with col:
            st.markdown(f"**{titles[key]}**")
            st.image(v.picture(kind, r, build, *args), width="stretch")
            if key != "map":
                st.markdown(verdict(r_top if key == "top" else r_rnd))
            png_later(build, *args, filename=f"what-if-topk-{key}.png", key=f"wi_png_topk_{key}")
    drop_top, drop_rnd = a.probs[pred] - r_top.probs[pred], a.probs[pred] - r_rnd.probs[pred]
    st.markdown(f"If the map points at the evidence, hiding its top {k} patches must hurt more than hiding "
                f"{k} random ones. Here: **{drop_top:+.1%}** lost vs **{drop_rnd:+.1%}** "
                f"({'the map wins' if drop_top > drop_rnd else 'the map does not win on this image'}).")
    exports("topk", {"saliency": sal, "top": np.array(top), "random": np.array(rnd), "probs_top": r_top.probs,
                     "probs_random": r_rnd.probs},
            f"sal = faithfulness.explanation_map(model, x, {method!r})\ntop = iv.top_patches(sal, {k})\n"
            f"rnd = iv.random_patches({N}, {k}, seed={int(seed)})\nfor hide in (top, rnd):\n"
            f"    print(iv.predict(model, iv.mask_patches(x, hide, {P}, {mode!r}))[0].max())")
    page_link("pages/attention.py", "5 · Attention maps: raw attention and rollout")


# --- shuffle, position embeddings, readout, size -------------------------------------------------
@st.fragment
def shuffle_section() -> None:
    st.markdown("### Shuffle the patches\n\n"
                "Self-attention treats its input as a set: only the position embeddings (Eq. 1) say where "
                "a patch was. Without them a shuffle changes nothing but the order of the outputs.")
    c1, c2 = row(2)  # the seed narrow, the radio the rest (as columns 3:1 were)
    pos = c1.radio("Position embeddings", interventions.POS_MODES, format_func=POS_NAMES.get, horizontal=True,
                   key="wi_shuf_pos", bind="query-params", width="stretch")
    seed = c2.number_input("Shuffle seed", 0, 9999, 1, key="wi_shuf_seed", bind="query-params", width=200)
    with st.spinner("Shuffling and running the model twice…"):
        r, img = what_if_cache.wi_shuffle(ctx.spec, ctx.sha, pos, int(seed), ctx.image_bytes)
    left, right = st.columns(2)
    with left:
        st.image(v.picture_at("wi_shuffled", (pos, int(seed)), figures.upscale_to, img), width="stretch",
                 caption=f"The {N} patches shuffled (seed {int(seed)})")
    with right:
        same = r.patch_diff < 1e-4
        box = st.success if (same != (pos == "learned")) else st.warning
        cls_txt = f" and [CLS] by **{r.cls_diff:.1e}**" if v.has_cls else ""
        box(f"Patch outputs (after the final norm) differ from the original ones, put in the same shuffled "
            f"order, by at most **{r.patch_diff:.1e}**{cls_txt}. "
            + ("The model cannot tell the shuffle from the original." if same else
               "The position embeddings let the model see the shuffle."))
        if C:
            t0, t1 = int(r.probs_original.argmax()), int(r.probs_shuffled.argmax())
            st.markdown(f"Prediction before: **{name(t0)}** ({r.probs_original[t0]:.1%}); after the shuffle: "
                        f"**{name(t1)}** ({r.probs_shuffled[t1]:.1%}).")
        exports("shuffle", {"perm": r.perm, "probs_original": r.probs_original, "probs_shuffled": r.probs_shuffled,
                            "patch_diff": r.patch_diff, "cls_diff": r.cls_diff},
                f"r = iv.shuffle_check(model, x, pos={pos!r}, seed={int(seed)})\nprint(r.patch_diff, r.cls_diff)",
                (figures.upscale_to, img))
    page_link("pages/position_embeddings.py", "3 · Position embeddings: what they learned")


@st.fragment
def pos_readout_section() -> None:
    st.markdown("### Take the position embeddings away\n\n"
                "The paper found that the kind of position embedding (1-D, 2-D, relative) hardly matters, but "
                "none at all costs ImageNet 5-shot accuracy: 61.4% instead of 64.2% (App. D.4, Table 8). "
                "Here, for this image and a model trained with them:")
    with st.spinner("Running the model without position embeddings…"):
        runs = {pos: run(pos=pos) for pos in interventions.POS_MODES}
    cols = st.columns(3)
    for col, (pos, r) in zip(cols, runs.items()):
        with col:
            st.markdown(f"**{POS_NAMES[pos]}**: " + verdict(r))
            st.image(v.rollout_picture(r), width="stretch", caption="rollout")
    exports("positions", {f"probs_{p}": r.probs for p, r in runs.items()},
            "for pos in iv.POS_MODES:\n    print(pos, iv.forward_with(model, x, pos=pos).probs.max())")
    page_link("pages/position_embeddings.py", "3 · Position embeddings: what the model learned about places")

    st.markdown("### [CLS] or the mean of the patch tokens?\n\n"
                "The classifier reads the final [CLS] token. The paper tried averaging the patch tokens "
                "instead (global average pooling): both work equally well, *if trained that way* (App. D.3, "
                "Fig. 9). A model trained on one readout and read by the other shows what its tokens hold.")
    trained = "mean" if ctx.loaded.model.cfg.global_pool == "avg" else "cls"
    c1, c2 = st.columns(2)
    rr = {}
    for col, ro in zip((c1, c2), ("cls", "mean")):
        with col, st.spinner("Reading out the model…"):
            rr[ro] = run(readout=ro)
            label = "[CLS]" if ro == "cls" else "mean of the patch tokens"
            st.markdown(f"**{label}**{' (as trained)' if ro == trained else ''}: " + verdict(rr[ro]))
            top5(rr[ro], f"wi_top5_{ro}", f"Read from {label}")
    exports("readout", {f"probs_{ro}": rv.probs for ro, rv in rr.items()},
            "for ro in ('cls', 'mean'):\n    print(ro, iv.forward_with(model, x, readout=ro).probs.max())")
    page_link("pages/prediction.py", "6 · Prediction: the head and the logit lens")


@st.fragment
def size_section() -> None:
    st.markdown("### Another input size\n\n"
                "A ViT handles any number of patches; only its position embeddings come in one size. At a new "
                "resolution they are interpolated in 2-D by where they sit in the image (paper Sec. 3.2, "
                "here with timm's `resample_abs_pos_embed`): one of the only two places where the 2-D "
                "structure is put in by hand.")
    sizes = sorted({max(P, round(S0 * f / P) * P) for f in (160 / 224, 1.0, 288 / 224)})
    size = st.radio("Input size (px)", sizes, index=sizes.index(S0), horizontal=True, key="wi_size",
                    bind="query-params")
    with st.spinner(f"Resampling the position embeddings to {size} px…"):
        r = run(size=size)
    left, right = st.columns(2)
    with left:
        st.image(v.rollout_picture(r), width="stretch", caption=f"{size} x {size} px: {r.grid[0]} x {r.grid[1]} = "
                                               f"{r.grid[0] * r.grid[1]} patches, rollout on top")
    with right:
        st.markdown(f"**{r.grid[0] * r.grid[1] + n}** tokens ({N + n} at {S0} px); prediction: " + verdict(r))
        exports("size", {"probs": r.probs, "rollout": r.rollout},
                f"xs = iv.input_at_size(img, lm.data_config, {size}, {P})\n"
                "r = iv.run(model, xs, lm.data_config)\nprint(r.grid, r.probs.max())", (with_rollout, r))
    page_link("pages/position_embeddings.py", "3 · Position embeddings")


# One experiment at a time, in tabs that run only when shown (bound to the URL: a link opens the
# lecturer's tab). The page used to run all seven for every student on every visit: the costliest
# page of the walk, and a click on a patch re-sent all of them.
SECTIONS = {"Hide patches": hide_section, "Shuffle": shuffle_section,
            "Positions and readout": pos_readout_section, "Another size": size_section,
            "Follow one patch": lambda: patch_section(v),
            "Do the maps tell the truth?": lambda: truth_section(v)}  # the costliest: many passes
if not C:
    st.info("This model has no classification head (a feature extractor), so there is no prediction to "
            "change: only **Follow one patch** applies.")
    SECTIONS = {"Follow one patch": SECTIONS["Follow one patch"]}
for tab, section in zip(st.tabs(list(SECTIONS), key="wi_tab", bind="query-params"), SECTIONS.values()):
    if tab.open:
        with tab:
            section()
