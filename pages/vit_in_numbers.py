"""ViT in numbers: the paper's model variants (Table 1), results (Table 2) and what the compute cost."""
import pandas as pd
import streamlit as st

from pages._ui import cache, present
from pages._ui.present import page_link
from pages._ui.sidebar import sidebar
from pages._ui.site import FAMILY_COLORS, PLOTLY_CONFIG
from pages._ui.widgets import font_size, header, row
from vit_core.analysis import lecture as lec
from vit_core.render import lecture_charts

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("ViT in numbers",
       "What the paper reported: three model sizes, accuracy after fine-tuning on standard benchmarks, and "
       f"the compute it took to pre-train them. All numbers from {lec.PAPER}, Tables 1 and 2.")

st.subheader("The models (Table 1)")
cache.table("num_t1", (), lambda: pd.DataFrame([dict(Model=v.name, Layers=v.layers, **{"Hidden size D": v.width, "MLP size": v.mlp},
                        Heads=v.heads, **{"Params (paper)": f"{v.params_m:g}M",
                                          "Params (formula, /16)": f"{lec.param_count(v.layers, v.width, v.mlp) / 1e6:.1f}M"})
                   for v in lec.VARIANTS]).set_index("Model"))
st.caption("The formula counts every weight and bias of a ViT with 16 x 16 patches, 224 x 224 input and a "
           "1000-class head; the paper rounds (and its ViT-L figure is a little higher). Names like ViT-L/16 "
           "give the patch size: /16 means 16 x 16 patches, /14 means 14 x 14 (more tokens, more compute). "
           f"The model loaded in this app has D = {cfg.embed_dim}, {cfg.depth} layers and {cfg.num_heads} heads.")

st.markdown("### The results (Table 2)\n\n"
            "Accuracy after fine-tuning, against the compute it took to pre-train the model, in "
            "**TPUv3-core-days**: one core-day is one TPU v3 core busy for 24 hours, and the paper writes "
            "thousands as k (0.23k = 230 core-days).", help=lec.GLOSSARY["core-days"])
datasets = list(lec.RESULTS)


@st.fragment
def results() -> None:
    """One benchmark of Table 2: the selector reruns only this part."""
    dataset = st.selectbox("Benchmark", datasets, key="num_dataset", bind="query-params", width=420)
    rows = [r for r in lec.results_rows() if r["dataset"] == dataset]
    fs = font_size()
    left, right = st.columns([3, 2])
    with left:
        cache.plotly_chart(cache.chart("num_scatter", (dataset, fs), lecture_charts.results_scatter, rows, dataset,
                                    FAMILY_COLORS, font_size=fs), key="num_scatter", config=PLOTLY_CONFIG)
    with right:
        cache.plotly_chart(cache.chart("num_bars", (dataset, fs), lecture_charts.results_bars, rows, dataset,
                                    FAMILY_COLORS, font_size=fs), key="num_bars", config=PLOTLY_CONFIG)
    if dataset == "ImageNet":
        st.caption(lec.RESULTS_NOTE)


results()

vit, bit = "vit_l16_jft", "bit_l"
wins = [d for d in datasets if lec.RESULTS[d][vit] >= lec.RESULTS[d][bit]]
st.markdown(
    f"**Reading the table.** ViT-L/16, pre-trained on the same JFT-300M data as BiT-L, matches or beats it on "
    f"{len(wins)} of {len(datasets)} benchmarks with **{lec.CORE_DAYS[bit] / lec.CORE_DAYS[vit]:.0f} x less** "
    f"pre-training compute ({lec.CORE_DAYS[vit]:,} against {lec.CORE_DAYS[bit]:,} TPUv3-core-days). The largest "
    f"model, ViT-H/14, is the best on {sum(max(v for v in lec.RESULTS[d].values() if v is not None) == lec.RESULTS[d]['vit_h14_jft'] for d in datasets)} "
    f"of {len(datasets)}. Pre-trained on the public ImageNet-21k instead, ViT-L/16 is a few points lower, "
    f"but took only {lec.CORE_DAYS['vit_l16_i21k']:,} core-days (0.23k in the paper's notation).",
    help=lec.GLOSSARY["core-days"])
# Expanded on a projector (nobody clicks there); "–" where the paper reports nothing: a plain "-"
# in a table cell is Markdown for a bullet list, which doubles the row's height.
with st.expander("The whole of Table 2", expanded=present.is_present()):
    def whole_table() -> pd.DataFrame:
        full = pd.DataFrame({lec.MODEL_LABELS[k]: {d: (f"{lec.RESULTS[d][k]:.2f}" if lec.RESULTS[d][k] is not None
                                                       else "–") for d in datasets} for k in lec.MODEL_LABELS})
        full.loc["TPUv3-core-days"] = [f"{lec.CORE_DAYS[k] / 1000:g}k" for k in lec.MODEL_LABELS]
        full.loc["pre-training data"] = [lec.MODEL_DATA[k] for k in lec.MODEL_LABELS]
        return full
    cache.table("num_full", (), whole_table)
    st.caption(lec.RESULTS_NOTE + " Accuracies are means over three fine-tuning runs; – : not reported. "
               "Compute in thousands of TPUv3-core-days (2.5k = 2,500).")

st.markdown("### What did it cost?\n\n"
            "A **TPUv3-core-day** is one TPU v3 core busy for 24 hours. Renting is billed per hour, so the "
            "bill is core-days x 24 x the price of a core-hour.")


@st.fragment
def bill() -> None:
    """Price and model: these inputs rerun only this part."""
    m1, m2 = row(2)
    price = m1.number_input("Price per TPUv3 core-hour (USD)", min_value=0.0, max_value=100.0, value=0.5, step=0.05,
                            format="%.2f", key="num_price", bind="query-params")
    model_key = m2.selectbox("Model", list(lec.MODEL_LABELS), format_func=lec.MODEL_LABELS.get, key="num_model",
                             bind="query-params")
    days = lec.CORE_DAYS[model_key]
    cost = lec.training_cost(days, price)
    st.metric(f"Pre-training {lec.MODEL_LABELS[model_key]}", f"USD {cost:,.0f}")
    st.markdown(f"{days:,} core-days x 24 h x USD {price:.2f} = **USD {cost:,.0f}**. "
                f"On 256 cores at once, that is about {days / 256:.0f} days of wall-clock time.")
    cache.table("num_costs", (price,), lambda: pd.DataFrame(
        {"TPUv3-core-days": [f"{lec.CORE_DAYS[k]:,}" for k in lec.MODEL_LABELS],
         f"USD at {price:.2f}/core-hour": [f"{lec.training_cost(lec.CORE_DAYS[k], price):,.0f}" for k in lec.MODEL_LABELS]},
        index=list(lec.MODEL_LABELS.values())))
    st.caption("The price is a round figure for illustration: real prices depend on the provider, region, "
               "commitment and year. The figures are for one pre-training run; research needs many.")


bill()
page_link("pages/critics_impact.py", "Critics and impact")
