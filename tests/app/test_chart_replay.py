"""cache.plotly_chart: a shared figure is serialised once and replayed on later runs and sessions."""
from __future__ import annotations

import json

import plotly.io
from streamlit.testing.v1 import AppTest


def _page():
    import numpy as np
    import streamlit as st

    from pages._ui import cache
    from vit_core.render import figures

    k = int(st.query_params.get("k", 3))
    fig = cache.chart("replay_test", (k,), figures.bar_chart, [f"c{i}" for i in range(k)], np.arange(k) / k,
                      title=f"top {k}", font_size=16)
    cols = st.columns(2)
    with cols[1]:  # inside a container: the replay must land in the same place
        cache.plotly_chart(fig, key="replay_bars", config={"displaylogo": False})


def _spec(at: AppTest) -> dict:
    charts = [e for e in at.main if e.type == "plotly_chart"] or \
        [c for col in at.columns for c in col.children.values() if getattr(c, "type", "") == "plotly_chart"]
    return json.loads(charts[0].proto.spec)


def test_replayed_chart_is_the_figure_and_follows_its_key():
    from pages._ui import cache

    at = AppTest.from_function(_page, default_timeout=60).run()
    assert not at.exception
    first = _spec(at)
    at2 = AppTest.from_function(_page, default_timeout=60).run()  # a second session: a cache hit
    assert not at2.exception and _spec(at2) == first
    want = json.loads(plotly.io.to_json(cache.chart("replay_test", (3,), None), validate=False))
    assert first["data"] == want["data"] and first["layout"]["title"] == want["layout"]["title"]
    assert at2.columns[1].children, "the replayed chart sits in its column"
    at2.query_params["k"] = 5
    at2.run()
    assert "top 5" in json.dumps(_spec(at2)["layout"]["title"])  # another key: another figure


def test_widget_charts_take_the_ordinary_path():
    from pages._ui import cache

    calls = []

    class Probe:
        _vit_key = ("k", ())

    import streamlit as st
    orig = st.plotly_chart
    try:
        st.plotly_chart = lambda fig, **kw: calls.append(kw)
        cache.plotly_chart(Probe(), key="sel", on_select="rerun", selection_mode="points")
    finally:
        st.plotly_chart = orig
    assert calls and calls[0]["on_select"] == "rerun"


def _picker_page():
    import numpy as np
    import streamlit as st

    from pages._ui import cache
    from vit_core.render import figures

    sel = int(st.query_params.get("sel", 5))
    img = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    fig = cache.chart("picker_test", (sel,), figures.patch_picker, img, (2, 2), 16, sel, height=300)
    cache.plotly_chart(fig, key="pick", selection_mode="points", on_select="rerun")


def test_a_shared_widget_chart_sends_what_plotly_would_and_is_not_copied_per_run():
    """Widget charts take st.plotly_chart's own path, which starts with fig.to_dict(): a shared
    figure hands out one dict made when it was built, equal to what plotly makes of it."""
    import numpy as np

    from pages._ui import cache
    from vit_core.render import figures

    at = AppTest.from_function(_picker_page, default_timeout=60).run()
    assert not at.exception
    img = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    fresh = figures.patch_picker(img, (2, 2), 16, 5, height=300)
    assert _spec(at) == json.loads(plotly.io.to_json(fresh, validate=False))  # the same chart as unshared
    shared = cache.chart("picker_test", (5,), None)
    assert shared.to_dict() is shared.to_dict()
    assert shared.to_dict() == fresh.to_dict()
    at.query_params["sel"] = 2
    at.run()
    assert _spec(at)["layout"]["shapes"][0]["x0"] == 0 and _spec(at)["layout"]["shapes"][0]["y0"] == 16


def _table_page():
    import pandas as pd
    import streamlit as st

    from pages._ui import cache

    k = int(st.query_params.get("k", 2))
    built = st.session_state.setdefault("built", [])

    def build() -> pd.DataFrame:
        built.append(k)
        return pd.DataFrame({"n": list(range(k))}, index=[f"row {i}" for i in range(k)])
    with st.columns(2)[1]:
        cache.table("replay_table_test", (k,), build)


def test_replayed_table_is_built_once_and_follows_its_key():
    """cache.table: the DataFrame is built and converted once per key; later runs replay the element."""
    at = AppTest.from_function(_table_page, default_timeout=60).run()
    at.run()
    assert not at.exception
    assert list(at.table[0].value["n"]) == [0, 1]
    assert at.session_state["built"] == [2]  # two runs, one build
    at2 = AppTest.from_function(_table_page, default_timeout=60).run()  # another session: replayed too
    assert list(at2.table[0].value["n"]) == [0, 1] and at2.session_state["built"] == []
    assert at2.columns[1].children, "the replayed table sits in its column"
    at2.query_params["k"] = 3
    at2.run()
    assert list(at2.table[0].value["n"]) == [0, 1, 2] and at2.session_state["built"] == [3]
