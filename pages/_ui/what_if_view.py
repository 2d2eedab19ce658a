"""The "What if?" page's shared view (model, image, names, export helpers) and its two longer
sections: "Do the maps tell the truth?" and "Follow one patch". Layout and words only: the numbers
come from vit_core.analysis (interventions, faithfulness, patch_life) through pages/_ui/cache.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from pages._ui import cache, what_if_cache
from pages._ui.present import page_link
from pages._ui.sidebar import Ctx
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import clamp_state, exports, font_size, image_path, row
from vit_core.analysis import explain, faithfulness, patch_life
from vit_core.model import count_params
from vit_core.render import figures
from vit_core.render import whatif_figures as wf

MODE_NAMES = {"mean": "the image's mean colour", "blur": "a blur of the image", "noise": "random noise"}
POS_NAMES = {"learned": "learned (as trained)", "none": "none (all zero)", "mean": "all the same (their mean)"}
NAMES = faithfulness.METHOD_NAMES


@dataclass
class View:
    """What every section of the page needs: the sidebar's choice, its analysis and a few sizes."""

    ctx: Ctx
    a: explain.Analysis

    def __post_init__(self):
        a, cfg = self.a, self.ctx.loaded.model.cfg
        self.n, self.grid, self.P, self.L = a.num_prefix_tokens, a.grid, a.patch_size, a.depth
        self.N, self.C, self.S0 = a.grid[0] * a.grid[1], a.probs.size, cfg.img_size
        self.pred = int(a.probs.argmax()) if self.C else -1
        self.has_cls = cfg.class_token
        self._keys: dict[int, tuple] = {}
        self.fs = font_size()  # chart text: larger in presentation mode
        path = image_path(self.ctx)
        self.prelude = ("from vit_core.io import images, loading\n"
                        "from vit_core.analysis import explain, faithfulness, interventions as iv, patch_life\n"
                        f"lm = loading.load_model({self.ctx.spec!r})\nmodel = lm.model\n"
                        f"img = images.load_image(open({path!r}, 'rb').read())\n"
                        "x = lm.transform(img).unsqueeze(0)  # (1, 3, H, W)\n")

    def chart(self, kind: str, key: tuple, build, *args, **kwargs):
        """A plotly figure built once per (model, image, ``key``, font size) and shared by all sessions."""
        return cache.chart(kind, (self.ctx.spec, self.ctx.sha) + key + (self.fs,), build, *args,
                           font_size=self.fs, **kwargs)

    def name(self, i: int) -> str:
        return self.ctx.class_name(int(i))

    def run(self, hidden=(), mode: str = "mean", pos: str = "learned", readout: str = "", size: int | None = None):
        """The cached interventions.Run of this image under the given changes."""
        key = (tuple(sorted(int(p) for p in hidden)), mode, pos, readout, size or self.S0)
        r = what_if_cache.wi_run(self.ctx.spec, self.ctx.sha, *key, self.ctx.image_bytes)
        self._keys[id(r)] = key  # this run's pictures of r are cached under the change that made it
        return r

    def picture(self, kind: str, r, build, *args) -> str:
        """``build(*args)`` for the change that made the run ``r`` (see ``picture_at``)."""
        return self.picture_at(kind, self._keys[id(r)], build, *args)

    def picture_at(self, kind: str, key: tuple, build, *args) -> str:
        """``build(*args)`` as a JPEG data URL for st.image, drawn once per (model, image, ``key``) and
        shared: st.image would encode the array again on every run of every student."""
        return cache.encoded(kind, (self.ctx.spec, self.ctx.sha) + key, build, *args, url=True)

    def rollout_picture(self, r) -> str:
        return self.picture("wi_roll", r, self.with_rollout, r)

    @property
    def big(self) -> np.ndarray:
        return figures.upscale_to(self.a.image)

    def exports(self, key: str, arrays: dict, code: str, img=None) -> None:
        """The PNG of a picture, the numbers behind a figure as .npz and the code that recomputes them
        (``widgets.exports``, after this page's prelude)."""
        exports(f"wi_png_{key}", f"what-if-{key}", img, arrays, self.prelude + code)

    def verdict(self, r) -> str:
        """The prediction of a run, and what became of the original prediction's probability."""
        top, p = int(r.probs.argmax()), self.pred
        return (f"**{self.name(top)}** ({r.probs[top]:.1%}); {self.name(p)} {self.a.probs[p]:.1%} → "
                f"**{r.probs[p]:.1%}**")

    def top5(self, r, key: str, title: str) -> None:
        idx = np.argsort(r.probs)[::-1][: min(5, self.C)]
        fig = self.chart("wi_top5", (title, tuple(idx.tolist()), tuple(np.round(r.probs[idx], 6).tolist())),
                         figures.bar_chart, [self.name(i) for i in idx], r.probs[idx], title=title)
        cache.plotly_chart(fig, key=key, config=PLOTLY_CONFIG)

    @staticmethod
    def with_rollout(r) -> np.ndarray:
        # blended at the model's input size, then enlarged: a quarter of the pixels to blend on each
        # click, and the picture is that input's pixels either way
        img = figures.overlay(r.image, r.rollout, "inferno", 0.55) if r.rollout is not None else r.image
        return figures.upscale_to(img)


# --- do the maps tell the truth? ----------------------------------------------------------------
@st.fragment
def truth_section(v: View) -> None:
    title = "### Do the maps tell the truth?"
    if not v.has_cls:
        st.markdown(title)
        st.info("This model has no [CLS] token, and every map here reads the [CLS] row.")
        return
    st.markdown(f"{title}\n\n"
                "**Deletion and insertion** (Petsiuk et al., 2018): hide the patches in the map's order, most "
                "important first, and follow the probability of the predicted class; or start from a blurred "
                "image and reveal them in that order. A faithful map makes the deletion curve fall fast "
                "(small area) and the insertion curve rise fast (large area). A random order is the bar to beat.")
    params = count_params(v.ctx.loaded.model)
    # Off until asked: a class walking the pages should not pay for 4 x 33 forward passes each.
    if not st.toggle("Run the checks", value=False, key="wi_truth", bind="query-params",
                     help="Seconds for the bundled model; minutes on a CPU for ViT-B. Shared by every "
                          "student looking at the same image once computed."):
        st.caption(f"Switch on to run them on your image: 4 maps x {2 * 16 + 1} forward passes and "
                   f"{v.L + 2} re-initialised copies of this {params / 1e6:.1f}M-parameter model with a "
                   "backward pass each.")
        return
    c1, c2 = row(2)
    steps = int(c1.slider("Steps", 4, 48, 16, 4, key="wi_steps", bind="query-params"))
    start = c2.selectbox("Insertion starts from", ["blur", "mean"], format_func=MODE_NAMES.get,
                         key="wi_ins_base", bind="query-params")
    methods = list(faithfulness.METHODS) + ["random"]
    res = {}
    with st.spinner(f"Deleting and inserting patches: {len(methods)} maps x {2 * steps} images…"):
        for m in methods:
            res[m] = what_if_cache.wi_deletion(v.ctx.spec, v.ctx.sha, m, steps, start, v.ctx.image_bytes)
    fr = res["random"].fractions
    for col, kind in zip(st.columns(2), ("deletion", "insertion")):
        with col:
            done = "hidden" if kind == "deletion" else "revealed"
            fig = v.chart("wi_curves", (kind, steps, start), wf.curves, fr,
                          {m: getattr(r, kind) for m, r in res.items()}, NAMES,
                          f"{kind.capitalize()}: {v.name(res['random'].target)}", f"% of patches {done}",
                          {m: getattr(r, f"{kind}_auc") for m, r in res.items()})
            cache.plotly_chart(fig, key=f"wi_{kind}", config=PLOTLY_CONFIG)
    st.table({"map": [NAMES[m] for m in methods],
              "deletion area (lower is better)": [f"{res[m].deletion_auc:.3f}" for m in methods],
              "insertion area (higher is better)": [f"{res[m].insertion_auc:.3f}" for m in methods]})
    v.exports("deletion-insertion",
              {"fractions": fr, **{f"{k}_{m}": getattr(res[m], k) for m in methods for k in ("deletion", "insertion")}},
              "for m in ('raw_attention', 'rollout', 'chefer', 'random'):\n"
              "    sal = faithfulness.explanation_map(model, x, m)\n"
              f"    r = faithfulness.deletion_insertion(model, x, sal, steps={steps}, insert_from={start!r})\n"
              "    print(m, r.deletion_auc, r.insertion_auc)")

    st.markdown("**Model randomisation** (Adebayo et al., 2018): re-initialise the weights from the top down "
                "(the head, then block by block, then the embeddings) and recompute the map. A map that "
                "explains *the model* must change as the model is destroyed; a rank correlation ρ with the "
                "original near 1 means the map shows the image more than what the network learned.")
    method = st.selectbox("Map", faithfulness.METHODS, index=2, format_func=NAMES.get, key="wi_rand_method",
                          bind="query-params")
    with st.spinner(f"Re-initialising a copy of the model step by step ({v.L + 2} steps)…"):
        seed = 0
        rc = what_if_cache.wi_randomization(v.ctx.spec, v.ctx.sha, method, seed, v.ctx.image_bytes)
    strip = (wf.randomization_strip, v.a.image, rc.maps, rc.steps, rc.correlations)  # drawn once per map, shared
    st.image(v.picture_at("wi_rand_strip", (method, seed), *strip), width="stretch",
             caption="The map after each step (everything up to it re-initialised) and its "
                     "Spearman rank correlation with the original map.")
    cache.plotly_chart(v.chart("wi_corr", (method,), wf.correlation_chart, rc.steps, rc.correlations, method,
                            NAMES[method]), key="wi_rand_corr", config=PLOTLY_CONFIG)
    v.exports("randomisation", {"maps": rc.maps, "correlations": rc.correlations, "steps": np.array(rc.steps)},
              f"rc = faithfulness.randomization_check(model, x, {method!r}, seed=0)\n"
              "print(list(zip(rc.steps, rc.correlations.round(2))))", strip)
    page_link("pages/prediction.py", "6 · Prediction: Chefer relevance for any class")


# --- follow one patch ---------------------------------------------------------------------------
@st.fragment
def patch_section(v: View) -> None:
    st.markdown("### Follow one patch\n\n"
                "Pick a patch and a layer: whom the patch attends to, who attends to it, which tokens it "
                "resembles, how large its token has grown, and what the classifier would read from it.")
    if not st.toggle("Follow a patch", value=False, key="wi_follow", bind="query-params"):
        return
    a, n, N, L, (gh, gw) = v.a, v.n, v.N, v.L, v.grid
    clamp_state("wi_patch", 0, N - 1)
    clamp_state("wi_layer", 1, L)
    heads = ["mean"] + [str(h) for h in range(1, a.num_heads + 1)]
    if st.session_state.get("wi_head", "mean") not in heads:
        del st.session_state["wi_head"]
    c1, c2, c3 = row(3)  # the head's box narrow, as columns 2:2:1 drew it
    patch = c1.slider("Patch (or click the image)", 0, N - 1, (gh // 2) * gw + gw // 2, key="wi_patch",
                      bind="query-params")
    layer = c2.slider("Layer (block)", 1, L, L, key="wi_layer", bind="query-params")
    head = c3.selectbox("Head", heads, key="wi_head", bind="query-params",
                        format_func=lambda h: "mean of heads" if h == "mean" else f"head {h}", width=200)
    pv = patch_life.follow(a, patch, layer, None if head == "mean" else int(head) - 1)
    left, right = st.columns(2)
    with left:
        cache.plotly_chart(v.chart("wi_follow_pick", (patch,), figures.patch_picker, a.image, a.grid, v.P, patch,
                                height=430), key="wi_follow_pick",
                        selection_mode="points", config=PLOTLY_CONFIG,
                        on_select=lambda: figures.store_pick(st.session_state, "wi_follow_pick", "wi_patch", N))
    head_arg = "" if head == "mean" else f", head={int(head) - 1}"
    code = ("a = explain.analyze(model, lm.transform, lm.data_config, img)\n"
            f"v = patch_life.follow(a, {patch}, {layer}{head_arg})\n")
    with right:
        cache.plotly_chart(v.chart("wi_traj", (patch, layer), wf.trajectory, pv.norm_trajectory, pv.cls_similarity,
                                pv.self_similarity, layer), key="wi_traj", config=PLOTLY_CONFIG)
        v.exports("patch-trajectory", {"norm": pv.norm_trajectory, "cos_cls": pv.cls_similarity,
                                       "cos_embedding": pv.self_similarity},
                  code + "print(v.norm_trajectory, v.cls_similarity, v.self_similarity)")
    # Each picture is drawn once per (image, patch, layer, head) and shared; its PNG only on a click.
    views = [
        ("looks", "Where it looks" + (f" ({pv.looks_at_prefix[0]:.1%} on [CLS])" if n else ""),
         lambda: figures.overlay(v.big, pv.looks_at, "inferno", 0.6), {"looks_at": pv.looks_at}),
        ("looked", "Who looks at it" + (f" ([CLS]: {pv.looked_at_by_prefix[0]:.1%})" if n else ""),
         lambda: figures.overlay(v.big, pv.looked_at_by, "inferno", 0.6), {"looked_at_by": pv.looked_at_by}),
        ("similar", "Cosine similarity of its token (blue -1, red +1)",
         lambda: figures.colorize_fixed(pv.similarity, "RdBu_r", -1, 1, scale=max(1, 448 // max(gh, gw))),
         {"similarity": pv.similarity}),
        ("norms", f"Token norms after block {layer}: {len(pv.outliers)} high-norm outliers (≥ "
                  f"{patch_life.OUTLIER_FACTOR:g}x the median) outlined", lambda: wf.norm_map(pv.norms, pv.outliers),
         {"norms": pv.norms, "outliers": pv.outliers}),
        ("pca", "First 3 principal components of the patch tokens as RGB ("
         + ", ".join(f"{x:.0%}" for x in pv.pca_var) + " of the variance)", lambda: wf.rgb_grid(pv.pca),
         {"pca": pv.pca}),
    ]
    cols = st.columns(3)
    for i, (key, title, draw, arrays) in enumerate(views):
        with cols[i % 3]:
            st.markdown(f"**{title}**")
            st.image(v.picture_at(f"wi_follow_{key}", (patch, layer, head), draw), width="stretch")
            v.exports(f"patch-{key}", arrays, code + f"print(v.{next(iter(arrays))})", (draw,))
    if v.C:
        with cols[2]:
            lens_c, lens_p = what_if_cache.wi_patch_lens(v.ctx.spec, v.ctx.sha, a)  # (L, T, 5) each
            p_pred, top_c, top_p = patch_life.lens_layer(lens_c, lens_p, layer, n, a.grid, v.pred)  # (gh, gw)
            names = np.vectorize(v.name)(top_c)
            cache.plotly_chart(v.chart("wi_lens", (layer,), wf.lens_map, p_pred, names, top_p,
                                    f"p({v.name(v.pred)}) per patch", height=380), key="wi_lens",
                            config=PLOTLY_CONFIG)
            st.caption(f"Each patch token after block {layer} read by the head. Patch {patch} alone would say "
                       f"**{names.flat[patch]}** ({top_p.flat[patch]:.0%}). The head was trained on [CLS] only: "
                       "an experiment, not the model's answer.")
            v.exports("patch-lens", {"top_class": lens_c[:, n:], "top_prob": lens_p[:, n:]},
                      code + f"c, p = patch_life.patch_lens(model, a.tokens)\nprint(c[{layer - 1}, {n + patch}])")
    st.caption("Darcet et al. (2024, *Vision Transformers Need Registers*) found a few patch tokens with very "
               "large norms in big ViTs, holding global information; models with register tokens "
               "(timm's `*_reg4_*`) move that into extra tokens. Plotly charts: PNG from the camera icon.")
    page_link("pages/attention.py", "5 · Attention maps: every layer and head")
