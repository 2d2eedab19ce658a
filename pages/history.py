"""A brief history: from the Transformer for translation (2017) to ViT (2020) and what followed."""
import datetime as dt
import textwrap

import plotly.graph_objects as go
import streamlit as st

from pages._ui.sidebar import sidebar
from pages._ui.widgets import header
from pages._ui.present import page_link
from vit_core.analysis import lecture

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("A brief history",
       "ViT did not invent anything new for language: it took the Transformer encoder that had already "
       "won in NLP and fed it an image instead of a sentence. The timeline below shows where the pieces "
       "came from, and what the vision community built on ViT in the year that followed.")

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

# An ordinal timeline: events evenly spaced (the years 2020-21 are crowded), labels alternating
# above and below the line, so that every name stays readable on a projector.
fig = go.Figure()
xs = list(range(len(shown)))
fig.add_trace(go.Scatter(x=[-0.5, len(shown) - 0.5], y=[0, 0], mode="lines", line=dict(color="#444", width=3),
                         hoverinfo="skip", showlegend=False))
for kind, label in (("NLP", "Language"), ("ViT", "ViT"), ("Vision", "Vision")):
    idx = [i for i, e in enumerate(shown) if e.kind == kind]
    if not idx:
        continue
    fig.add_trace(go.Scatter(
        x=idx, y=[0] * len(idx), mode="markers", name=label,
        marker=dict(size=[34 if shown[i].name == focus else 22 for i in idx], color=COLOURS[kind],
                    line=dict(width=[5 if shown[i].name == focus else 2 for i in idx], color="black")),
        customdata=[[shown[i].name, shown[i].who, shown[i].line] for i in idx],
        hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]}<br>%{customdata[2]}<extra></extra>"))
for i, e in enumerate(shown):
    up = i % 2 == 0
    name = "<br>".join(textwrap.wrap(e.name, 17))
    fig.add_annotation(x=i, y=0, ax=0, ay=-62 if up else 62, showarrow=True, arrowhead=0, arrowwidth=2, arrowcolor="#666",
                       text=(f"<b>{name}</b>" if e.name == focus else name) + f"<br><span style='color:#444'>"
                       f"{dt.date.fromisoformat(e.date):%b %Y}</span>",
                       yanchor="bottom" if up else "top", font=dict(size=17, color=COLOURS[e.kind]))
fig.update_layout(height=380, font=dict(size=16, color="#111111"), margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                  legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom", font=dict(size=16, color="#111111")),
                  xaxis=dict(visible=False, range=[-0.6, len(shown) - 0.4]),
                  yaxis=dict(visible=False, range=[-1.3, 1.3]))
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
