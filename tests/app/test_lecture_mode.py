"""Lecture mode: the calculators, the handout, the narrative pages, presentation mode and deep links.

AppTest runs each narrative page on the default model and sample image and checks the numbers it
shows; every page of the talk must run in presentation mode (?present=1) with the chrome-hiding CSS
and the Previous/Next buttons; widgets bound to the URL must come back from a deep link.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages._ui import cache, present
from pages._ui.site import PAGES
from tests.support.apptest import page_title

ROOT = Path(__file__).resolve().parents[2]
NARRATIVE = ("history", "pixels_as_tokens", "vit_in_numbers", "critics_impact", "appendix")


# --- narrative pages (AppTest) -----------------------------------------------------------------


def run(page: str, params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=90)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "latex", "subheader", "title") for e in getattr(at, kind)]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    parts += [df.value.to_string() for df in list(at.dataframe) + list(at.table)]
    return "\n".join(str(p) for p in parts)


def test_pixels_page_numbers_follow_the_widgets():
    at = run("pixels_as_tokens")
    t = text(at)
    assert "22,658,678,784" in t and "38,809" in t and "22.7 billion" in t
    assert at.select_slider(key="px_size").value == 224 and at.select_slider(key="px_patch").value == 16
    table = at.table[0].value
    assert list(table["Tokens"]) == ["150,528", "50,176", "197"]
    assert table["Memory, 1 head"].iloc[2] == "155.2 KB" and table["Memory, 1 head"].iloc[0] == "90.6 GB"
    assert table["Memory, 12 heads x 12 layers"].iloc[2] == "22.4 MB"
    assert table["FLOPs per layer"].iloc[2] == "2.9 GFLOPs"
    at.select_slider(key="px_patch").set_value(32)
    at.select_slider(key="px_size").set_value(512)
    at.run()
    assert list(at.table[0].value["Tokens"])[2] == f"{(512 // 32) ** 2 + 1:,}"  # 257
    assert list(at.table[0].value["Tokens"])[0] == f"{3 * 512 * 512:,}"


def test_numbers_page_tables_and_cost():
    at = run("vit_in_numbers")
    t = text(at)
    for value in ("88.55", "87.76", "85.30", "87.54", "99.50", "77.63"):
        assert value in t, value
    assert "USD 30,000" in t
    assert "6 of 7 benchmarks" in t and "15 x less" in t
    at.number_input(key="num_price").set_value(1.0)
    at.run()
    t = text(at)
    assert "USD 60,000" in t and "USD 30,000" not in t
    at.selectbox(key="num_model").set_value("bit_l")
    at.run()
    assert any(m.value == "USD 237,600" for m in at.metric)
    at.selectbox(key="num_dataset").set_value("CIFAR-100")
    at.run()
    assert not at.exception


def test_history_critics_appendix_pages():
    at = run("history")
    t = text(at)
    for name in ("Attention Is All You Need", "BERT", "DeiT", "Swin", "DINO", "MAE", "ICLR 2021"):
        assert name in t
    assert at.get("plotly_chart")
    at = run("critics_impact")
    t = text(at)
    assert "USD 30,000" in t and "Smarter patching" in t and "Came true" in t
    assert "train" in t.lower()
    at = run("appendix")
    cfg = cache.get_model(at.selectbox(key="model").value).model.cfg
    T = cfg.num_patches + cfg.num_prefix_tokens
    assert f"{T} x {T}" in text(at)
    diff = next(m for m in at.metric if m.label.startswith("Largest difference"))
    assert float(diff.value) < 1e-4


def test_deep_link_restores_bound_widgets():
    at = run("pixels_as_tokens", {"px_size": "512", "px_patch": "8", "px_model": "ViT-Huge"})
    assert at.select_slider(key="px_size").value == 512
    assert at.select_slider(key="px_patch").value == 8
    assert at.selectbox(key="px_model").value == "ViT-Huge"
    assert list(at.table[0].value["Tokens"])[2] == f"{64 * 64 + 1:,}"
    at = run("history", {"hist_event": "DINO", "hist_show": "Vision"})
    assert at.select_slider(key="hist_event").value == "DINO"
    at = run("vit_in_numbers", {"num_price": "2.0", "num_dataset": "VTAB (19 tasks)"})
    assert at.number_input(key="num_price").value == 2.0 and "USD 120,000" in text(at)
    at = run("appendix", {"app_layer": "2", "app_head": "2"})
    assert at.slider(key="app_layer").value == 2 and at.slider(key="app_head").value == 2


# --- presentation mode -----------------------------------------------------------------------


def _html(at: AppTest) -> str:
    return "\n".join(e.proto.body for e in at.get("html"))


@pytest.mark.parametrize("entry", [p for p in PAGES if (ROOT / p[0]).exists()], ids=lambda p: p[2])
def test_every_page_runs_in_presentation_mode(entry):
    at = AppTest.from_file(str(ROOT / entry[0]), default_timeout=120)
    at.query_params["present"] = "1"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert present.CSS_MARKER in _html(at)
    assert 'data-testid="stSidebar"' in _html(at) and "stHeader" in _html(at)
    prev, nxt = at.button(key="_present_prev"), at.button(key="_present_next")
    pages = present.talk()
    assert prev.disabled == (entry == pages[0]) and nxt.disabled == (entry == pages[-1])
    # no lecture tools on the projector: its top bar has the QR code and Exit
    assert not _lecture_tools(at)
    assert not [t for t in at.toggle if t.key == "_present_toggle"]


def _popovers(node):
    """Every popover block under ``node`` (AppTest's ``get`` finds elements, not blocks)."""
    for child in getattr(node, "children", {}).values():
        if child.type == "popover":
            yield child
        yield from _popovers(child)


def _lecture_tools(at: AppTest) -> list:
    return [p for p in _popovers(at.main) if p.proto.popover.label == present.LECTURE_TOOLS]


def test_normal_mode_has_no_presentation_css_and_offers_the_lecture_tools():
    at = run("history")
    assert present.CSS_MARKER not in _html(at)
    assert "modebar-container" in "".join(m.value for m in at.sidebar.markdown)  # the page-wide CSS
    assert len(_lecture_tools(at)) == 1
    # closed: no toggle, no link, no QR code, no handout (one element on every run, not five)
    assert not at.toggle and not at.code and not at.get("image") and not at.get("download_button")
    assert not [b for b in at.button if b.key in ("_present_prev", "_present_next")]
    at.session_state["_lecture_open"] = True  # the lecturer opens "Lecture tools"
    at.run()
    assert at.toggle(key="_present_toggle").value is False
    assert at.get("image")  # the QR code
    assert any(c.value.startswith("http://") and "/history" in c.value for c in at.code)
    assert [d for d in at.get("download_button") if d.proto.label == "Handout of this image (HTML)"]
    at.toggle(key="_present_toggle").set_value(True)
    at.run()
    assert at.query_params["present"] == ["1"] or at.query_params["present"] == "1"
    assert present.CSS_MARKER in _html(at)
    assert not _lecture_tools(at) and not at.toggle
    at.button(key="_present_exit").click()
    at.run()
    assert "present" not in at.query_params and present.CSS_MARKER not in _html(at)
    assert len(_lecture_tools(at)) == 1 and not at.toggle  # back, closed


def test_next_and_previous_walk_the_talk_keeping_the_params():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["present"] = "1"
    at.query_params["sample"] = "shapes-star.png"
    at.switch_page("pages/history.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    model = at.selectbox(key="model").value
    assert at.selectbox(key="sample").value == "shapes-star.png"
    at.button(key="_present_next").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert page_title(at).startswith("Why not pixels")
    assert "present" in at.query_params
    assert at.selectbox(key="model").value == model
    assert at.selectbox(key="sample").value == "shapes-star.png"  # the same image, page after page
    at.button(key="_present_prev").click()
    at.run()
    assert page_title(at) == "A brief history"


def test_share_url_drops_presentation_mode():
    class FakeParams(dict):
        def get_all(self, k):
            v = self[k]
            return v if isinstance(v, list) else [v]
    orig = present.st.query_params
    try:
        present.st.query_params = FakeParams(present="1", sample="a b.png", att_layer="3")
        url = present.share_url(PAGES[1], override_base="192.168.1.5:8501")
    finally:
        present.st.query_params = orig
    assert url == "http://192.168.1.5:8501/history?sample=a+b.png&att_layer=3"
    assert present.qr_png(url)[:8] == b"\x89PNG\r\n\x1a\n"


def test_lecture_tools_draw_only_when_open_and_keep_the_typed_address():
    at = run("history")
    assert not at.code  # closed: no link, no QR code, no address box
    at.session_state["_lecture_open"] = True
    at.run()
    at.text_input(key="_share_base_in").set_value("192.168.1.7:8501").run()
    assert any(c.value.startswith("http://192.168.1.7:8501/history") for c in at.code)
    at.session_state["_lecture_open"] = False  # closed: the box is gone, the address is not
    at.run()
    assert not at.code
    at.session_state["_lecture_open"] = True
    at.run()
    assert at.text_input(key="_share_base_in").value == "192.168.1.7:8501"
    assert any(c.value.startswith("http://192.168.1.7:8501/history") for c in at.code)
