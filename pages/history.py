"""A brief history: from the Transformer for translation (2017) to ViT (2020) and what followed."""
import datetime as dt

import plotly.graph_objects as go
import streamlit as st

from pages._common import header, sidebar
from pages._present import page_link
from vit_core import lecture

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("A brief history",
       "ViT did not invent anything new for language: it took the Transformer encoder that had already "
       "won in NLP and fed it an image instead of a sentence. The timeline below shows where the pieces "
       "came from, and what the vision community built on ViT in the year that followed.")

LANES = {"NLP": 2, "ViT": 1, "Vision": 0}
COLOURS = {"NLP": "#1d4ed8", "ViT": "#c2410c", "Vision": "#047857"}
events = list(lecture.HISTORY)

c1, c2 = st.columns([2, 3])
show = c1.segmented_control("Show", ["All", "Language", "Vision"], default="All", key="hist_show",
                            bind="query-params")
shown = [e for e in events if show in (None, "All") or (show == "Language") == (e.kind == "NLP")
         or e.kind == "ViT"]
VIT = next(e.name for e in events if e.kind == "ViT")
focus = c2.select_slider("Step through the events", [e.name for e in events], value=VIT, key="hist_event",
                         bind="query-params")
sel = next(e for e in events if e.name == focus)

fig = go.Figure()
for kind, lane in LANES.items():
    evs = [e for e in shown if e.kind == kind]
    if not evs:
        continue
    # Alternate labels above and below the markers so that neighbours in time do not overlap.
    pos = ["top center" if i % 2 == 0 else "bottom center" for i in range(len(evs))]
    fig.add_trace(go.Scatter(
        x=[e.date for e in evs], y=[lane] * len(evs), mode="markers+text", name=kind,
        text=[f"<b>{e.name}</b><br>{e.date[:4]}" for e in evs], textposition=pos,
        marker=dict(size=[30 if e.name == focus else 18 for e in evs], color=COLOURS[kind],
                    line=dict(width=[4 if e.name == focus else 1 for e in evs], color="black")),
        customdata=[[e.who, e.line] for e in evs], textfont=dict(size=15),
        hovertemplate="<b>%{text}</b><br>%{customdata[0]}<br>%{customdata[1]}<extra></extra>",
    ))
fig.update_layout(height=430, font=dict(size=16), margin=dict(l=10, r=10, t=20, b=10), showlegend=False,
                  plot_bgcolor="white",
                  yaxis=dict(tickvals=list(LANES.values()), ticktext=["Vision", "ViT", "Language"],
                             range=[-0.8, 2.8], showgrid=False, zeroline=False),
                  xaxis=dict(range=["2017-01-01", "2022-06-30"], showgrid=True, gridcolor="#e5e5e5",
                             dtick="M6", tickformat="%b %Y"))
fig.add_vline(x="2020-10-22", line=dict(color=COLOURS["ViT"], dash="dot"))
st.plotly_chart(fig, key="hist_timeline", config={"displaylogo": False,
                                                  "toImageButtonOptions": {"format": "png", "scale": 2}})

when = dt.date.fromisoformat(sel.date)
st.markdown(f"### {when:%B %Y} · {sel.name}\n**{sel.who}.** {sel.line}" +
            (f" [Paper]({sel.url})" if sel.url else ""))

st.subheader("One line each")
for e in events:
    mark = " ◀" if e.name == focus else ""
    st.markdown(f"- **{e.date[:4]} · {e.name}** ({e.who}): {e.line}{mark}")
st.caption("Dates are those of the first public version (arXiv or blog post); conference years can be later "
           "(ViT: ICLR 2021).")

st.subheader("What ViT borrowed from BERT")
st.markdown(f"""
| BERT (text) | ViT (images) | The model loaded now |
|---|---|---|
| a word (token) | a {cfg.patch_size} x {cfg.patch_size} patch of pixels | {cfg.grid_size[0]} x {cfg.grid_size[1]} = {cfg.num_patches} patches |
| word embedding table | one linear map of the flattened patch | {cfg.in_chans}·{cfg.patch_size}·{cfg.patch_size} = {cfg.in_chans * cfg.patch_size ** 2} → D = {cfg.embed_dim} |
| learned position embeddings | learned 1-D position embeddings (the 2-D grid is not given) | {cfg.num_patches + cfg.num_prefix_tokens} x {cfg.embed_dim} |
| the [CLS] token summarises the input | the [CLS] token's output feeds the classifier | {"yes" if cfg.class_token else "no: this model averages the patch tokens"} |
| Transformer encoder | the same encoder, unchanged | {cfg.depth} layers, {cfg.num_heads} heads |
| pre-train, then fine-tune | pre-train on a big labelled set (ImageNet-21k, JFT-300M), fine-tune | |
""")
st.markdown("The one real novelty is the **first step**, cutting the image into patches: the next page "
            "shows why taking single pixels as the words does not work.")
page_link("pages/pixels_as_tokens.py", "Why not pixels?")
