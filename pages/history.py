"""A brief history: from the Transformer for translation (2017) to ViT (2020) and what followed."""
import datetime as dt

import streamlit as st

from pages._ui import cache
from pages._ui.present import page_link
from pages._ui.sidebar import sidebar
from pages._ui.site import PLOTLY_CONFIG
from pages._ui.widgets import font_size, header, row
from vit_core.analysis import lecture
from vit_core.render import lecture_charts

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("A brief history",
       "ViT did not invent anything new for language: it took the Transformer encoder that had already "
       "won in NLP and fed it an image instead of a sentence. The timeline below shows where the pieces "
       "came from, and what the vision community built on ViT in the year that followed.")

events = list(lecture.HISTORY)
VIT = next(e.name for e in events if e.kind == "ViT")


@st.fragment
def story() -> None:
    """The timeline, the chosen event and the list: the two controls rerun only this part."""
    c1, c2 = row(2)
    show = c1.segmented_control("Show", ["All", "Language", "Vision"], default="All", key="hist_show",
                                bind="query-params")
    focus = c2.select_slider("Step through the events", [e.name for e in events], value=VIT, key="hist_event",
                             bind="query-params")
    sel = next(e for e in events if e.name == focus)
    fs = font_size()
    fig = cache.chart("hist_timeline", (show, focus, fs), lecture_charts.timeline, lecture.history_shown(show),
                      focus, font_size=fs)
    cache.plotly_chart(fig, key="hist_timeline", config=PLOTLY_CONFIG)

    when = dt.date.fromisoformat(sel.date)
    # the chosen event and the list: one element, not three
    st.markdown(f"### {when:%B %Y} · {sel.name}\n**{lecture.sentence(sel.who)}** {sel.line}" +
                (f" [Paper]({sel.url})" if sel.url else "") + "\n\n### One line each\n\n" +
                "\n".join(f"- **{e.date[:4]} · {e.name}** ({e.who}): {e.line}" + (" ◀" if e.name == focus else "")
                          for e in events))


story()
st.caption("Dates are those of the first public version (arXiv or blog post); conference years can be later "
           "(ViT: ICLR 2021).")

st.markdown(f"""### What ViT borrowed from BERT

| BERT (text) | ViT (images) | The model loaded now |
|---|---|---|
| a word (token) | a {cfg.patch_size} x {cfg.patch_size} patch of pixels | {cfg.grid_size[0]} x {cfg.grid_size[1]} = {cfg.num_patches} patches |
| word embedding table | one linear map of the flattened patch | {cfg.in_chans}·{cfg.patch_size}·{cfg.patch_size} = {cfg.in_chans * cfg.patch_size ** 2} → D = {cfg.embed_dim} |
| learned position embeddings | learned 1-D position embeddings (the 2-D grid is not given) | {cfg.num_patches + cfg.num_prefix_tokens} x {cfg.embed_dim} |
| the [CLS] token summarises the input | the [CLS] token's output feeds the classifier | {"yes" if cfg.class_token else "no: this model averages the patch tokens"} |
| Transformer encoder | the same encoder, unchanged | {cfg.depth} layers, {cfg.num_heads} heads |
| pre-train, then fine-tune | pre-train on a big labelled set (ImageNet-21k, JFT-300M), fine-tune | |

The one real novelty is the **first step**, cutting the image into patches: the next page shows why taking single
pixels as the words does not work.
""")
page_link("pages/pixels_as_tokens.py", "Why not pixels?")
