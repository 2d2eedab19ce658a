"""ViT in numbers: the paper's model variants (Table 1), results (Table 2) and what the compute cost."""
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages._ui.sidebar import sidebar
from pages._ui.widgets import header
from pages._ui.present import page_link
from vit_core.analysis import lecture as lec

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("ViT in numbers",
       "What the paper reported: three model sizes, accuracy after fine-tuning on standard benchmarks, and "
       f"the compute it took to pre-train them. All numbers from {lec.PAPER}, Tables 1 and 2.")

COL = {"ViT": "#c2410c", "CNN": "#1d4ed8"}
SHORT = {**lec.MODEL_LABELS, "bit_l": "BiT-L", "noisy_student": "Noisy Student"}

st.subheader("The models (Table 1)")
t1 = pd.DataFrame([dict(Model=v.name, Layers=v.layers, **{"Hidden size D": v.width, "MLP size": v.mlp},
                        Heads=v.heads, **{"Params (paper)": f"{v.params_m:g}M",
                                          "Params (formula, /16)": f"{lec.param_count(v.layers, v.width, v.mlp) / 1e6:.1f}M"})
                   for v in lec.VARIANTS]).set_index("Model")
st.table(t1)
st.caption("The formula counts every weight and bias of a ViT with 16 x 16 patches, 224 x 224 input and a "
           "1000-class head; the paper rounds (and its ViT-L figure is a little higher). Names like ViT-L/16 "
           "give the patch size: /16 means 16 x 16 patches, /14 means 14 x 14 (more tokens, more compute). "
           f"The model loaded in this app has D = {cfg.embed_dim}, {cfg.depth} layers and {cfg.num_heads} heads.")

st.subheader("The results (Table 2)")
datasets = list(lec.RESULTS)
c1, c2 = st.columns([2, 3])
dataset = c1.selectbox("Benchmark", datasets, key="num_dataset", bind="query-params")
rows = [r for r in lec.results_rows() if r["dataset"] == dataset]

fig = go.Figure()
for fam in ("ViT", "CNN"):
    rs = [r for r in rows if r["family"] == fam]
    fig.add_trace(go.Scatter(
        x=[r["core_days"] for r in rs], y=[r["accuracy"] for r in rs], mode="markers+text", name=fam,
        text=[SHORT[r["key"]] for r in rs], textposition=["bottom center" if r["key"] == "bit_l" else "top center" for r in rs],
        textfont=dict(size=16, color="#111111"),
        marker=dict(size=22, color=COL[fam], symbol="circle" if fam == "ViT" else "square",
                    line=dict(width=2, color="black")),
        hovertemplate="%{text}<br>%{y:.2f}%<br>%{x:,} TPUv3-core-days<extra></extra>"))
accs = [r["accuracy"] for r in rows]
fig.update_layout(height=480, font=dict(size=16, color="#111111"), margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor="white",
                  title=f"{dataset}: accuracy against pre-training compute", legend=dict(orientation="h", y=-0.2),
                  xaxis=dict(title="pre-training compute (TPUv3-core-days, log scale)", type="log",
                             range=[2.0, 4.5], gridcolor="#e5e5e5"),
                  yaxis=dict(title="fine-tuned top-1 accuracy (%)", gridcolor="#e5e5e5",
                             range=[min(accs) - 0.6 * (max(accs) - min(accs) + 0.5), max(accs) + 0.5 * (max(accs) - min(accs) + 0.5)]))
left, right = st.columns([3, 2])
with left:
    st.plotly_chart(fig, key="num_scatter", config={"displaylogo": False,
                                                    "toImageButtonOptions": {"format": "png", "scale": 2}})
with right:
    ordered = sorted(rows, key=lambda r: r["accuracy"])
    bar = go.Figure(go.Bar(x=[r["accuracy"] for r in ordered], y=[SHORT[r["key"]] for r in ordered], orientation="h",
                           marker_color=[COL[r["family"]] for r in ordered],
                           text=[f"{r['accuracy']:.2f}" for r in ordered], textposition="outside"))
    bar.update_layout(height=480, font=dict(size=16, color="#111111"), margin=dict(l=10, r=30, t=50, b=10), plot_bgcolor="white",
                      title=f"{dataset} (%)", xaxis=dict(range=[min(accs) - 2, max(accs) + 1.6], gridcolor="#e5e5e5"))
    st.plotly_chart(bar, key="num_bars", config={"displaylogo": False})
if dataset == "ImageNet":
    st.caption(lec.RESULTS_NOTE)

vit, bit = "vit_l16_jft", "bit_l"
wins = [d for d in datasets if lec.RESULTS[d][vit] >= lec.RESULTS[d][bit]]
st.markdown(
    f"**Reading the table.** ViT-L/16, pre-trained on the same JFT-300M data as BiT-L, matches or beats it on "
    f"{len(wins)} of {len(datasets)} benchmarks with **{lec.CORE_DAYS[bit] / lec.CORE_DAYS[vit]:.0f} x less** "
    f"pre-training compute ({lec.CORE_DAYS[vit]:,} against {lec.CORE_DAYS[bit]:,} TPUv3-core-days). The largest "
    f"model, ViT-H/14, is the best on {sum(max(v for v in lec.RESULTS[d].values() if v is not None) == lec.RESULTS[d]['vit_h14_jft'] for d in datasets)} "
    f"of {len(datasets)}. Pre-trained on the public ImageNet-21k instead, ViT-L/16 is a few points lower, "
    "but took 0.23k core-days.")
with st.expander("The whole of Table 2"):
    full = pd.DataFrame({lec.MODEL_LABELS[k]: {d: (f"{lec.RESULTS[d][k]:.2f}" if lec.RESULTS[d][k] is not None else "-")
                                               for d in datasets} for k in lec.MODEL_LABELS})
    full.loc["TPUv3-core-days"] = [f"{lec.CORE_DAYS[k] / 1000:g}k" for k in lec.MODEL_LABELS]
    full.loc["pre-training data"] = [lec.MODEL_DATA[k] for k in lec.MODEL_LABELS]
    st.table(full)
    st.caption(lec.RESULTS_NOTE + " Accuracies are means over three fine-tuning runs.")

st.subheader("What did it cost?")
st.markdown("A **TPUv3-core-day** is one TPU v3 core busy for 24 hours. Renting is billed per hour, so the "
            "bill is core-days x 24 x the price of a core-hour.")
m1, m2, _ = st.columns([2, 2, 1])
price = m1.number_input("Price per TPUv3 core-hour (USD)", min_value=0.0, max_value=100.0, value=0.5, step=0.05,
                        format="%.2f", key="num_price", bind="query-params")
model_key = m2.selectbox("Model", list(lec.MODEL_LABELS), format_func=lec.MODEL_LABELS.get, key="num_model",
                         bind="query-params")
days = lec.CORE_DAYS[model_key]
cost = lec.training_cost(days, price)
st.metric(f"Pre-training {lec.MODEL_LABELS[model_key]}", f"USD {cost:,.0f}")
st.markdown(f"{days:,} core-days x 24 h x USD {price:.2f} = **USD {cost:,.0f}**. "
            f"On 256 cores at once, that is about {days / 256:.0f} days of wall-clock time.")
costs = pd.DataFrame({"TPUv3-core-days": [f"{lec.CORE_DAYS[k]:,}" for k in lec.MODEL_LABELS],
                      f"USD at {price:.2f}/core-hour": [f"{lec.training_cost(lec.CORE_DAYS[k], price):,.0f}"
                                                        for k in lec.MODEL_LABELS]},
                     index=list(lec.MODEL_LABELS.values()))
st.table(costs)
st.caption("The price is a round figure for illustration: real prices depend on the provider, region, "
           "commitment and year. The figures are for one pre-training run; research needs many.")
page_link("pages/critics_impact.py", "Critics and impact")
