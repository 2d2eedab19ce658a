"""Words and numbers a class reads off the explainer pages: one patch numbering everywhere, attention
maps that follow the query, the distance plot's pair counts, terms explained, no doubled punctuation.

AppTest runs on the default model and sample image; widgets are set through the URL (their
query-parameter binding), as a shared link would set them.
"""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from streamlit.proto.GapSize_pb2 import GapSize
from streamlit.testing.v1 import AppTest

from pages._ui import site
from tests.support.apptest import rerun, run, shown
from vit_core.analysis import attention_views, embeddings, patches
from vit_core.analysis import lecture as lec
from vit_core.io import loading
from vit_core.render import views

pytestmark = pytest.mark.skipif(
    loading.model_status(site.DEFAULT_SPEC).state == "unavailable",
    reason=f"{site.DEFAULT_SPEC} is not built (make model)",
)

MINE = ("overview", "history", "pixels_as_tokens", "patches", "patch_embedding", "position_embeddings",
        "self_attention", "attention", "prediction", "vit_in_numbers", "critics_impact", "appendix")
NAMED = re.compile(r"\b(?:patch|position) (\d+) \((row (\d+)), (col(?:umn)? (\d+))\)", re.IGNORECASE)


def words(at: AppTest) -> str:
    """Everything a page says in text: markdown, captions, headings, metrics, tables, chart titles,
    image captions and widget labels."""
    parts = [str(e.value) for kind in ("title", "header", "subheader", "markdown", "caption", "latex", "success",
                                       "info", "warning", "error") for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    parts += [df.value.to_string() for df in list(at.table) + list(at.dataframe)]
    parts += [c for img in at.get("image") for c in img.captions]
    for chart in at.get("plotly_chart"):
        title = (json.loads(chart.proto.spec)["layout"].get("title") or {}).get("text")
        parts += [title] if title else []
    parts += [w.label for kind in ("slider", "select_slider", "selectbox", "radio", "toggle", "number_input")
              for w in getattr(at, kind)]
    return "\n".join(parts)


# --- 1. one numbering on every page -------------------------------------------------------------


def test_the_same_patch_has_the_same_name_on_every_page():
    at = run("patches")
    a, _ = shown(at)
    gh, gw = a.grid
    n, N = a.num_prefix_tokens, gh * gw
    body = words(at)
    # the convention, stated once, with this grid's numbers
    assert patches.convention(gw, N, n) in body
    assert "row by row from the top left; rows and columns count from 0" in body
    assert "patch p is token p + 1" in body and n == 1

    p = min(N - 1, 7 * gw + 3)  # row 7, column 3 on a 14 x 14 grid (the "position 101")
    r, c = divmod(p, gw)
    pages = {"patch_embedding": dict(emb_patch=str(p)), "position_embeddings": dict(pos_patch=str(p)),
             "self_attention": dict(sa_q=str(p + n)), "attention": dict(att_q=str(p + n))}
    for page, query in pages.items():
        body = words(run(page, **query))
        named = {(int(m.group(1)), m.group(2), m.group(4)) for m in NAMED.finditer(body) if int(m.group(1)) == p}
        assert named == {(p, f"row {r}", f"column {c}")}, (page, named)
        assert "col " not in {m.group(4)[:4] for m in NAMED.finditer(body)}, page  # one spelling
        if page in ("self_attention", "attention"):  # the slider holds a token index: said as such
            assert f"token {p + n} = patch {p} (row {r}, column {c})" in body, page
            assert "patch p is token p + 1" in body, page


def test_token_labels_count_from_zero():
    at = run("attention")
    a, _ = shown(at)
    gw, n = a.grid[1], a.num_prefix_tokens
    assert attention_views.token_label(a, n) == "patch 0 (row 0, column 0)"
    assert attention_views.token_label(a, n + gw + 1) == f"patch {gw + 1} (row 1, column 1)"
    assert attention_views.query_label(a, n + 5) == "token 6 = patch 5 (row 0, column 5)"
    assert attention_views.token_label(a, 0) == "[CLS]"


# --- 2. the attention map follows the query -----------------------------------------------------


def _image_urls(at: AppTest) -> list[str]:
    return [i.url for img in at.get("image") for i in img.proto.imgs]


def test_the_query_map_follows_the_query():
    at = run("attention", att_layer="1", att_head="head 1", att_q="1")  # the URL holds the label
    a, _ = shown(at)
    n, gw = a.num_prefix_tokens, a.grid[1]
    q1, q2 = n, n + a.grid[0] * gw - 1  # top-left and bottom-right patches

    # the numbers: each query has its own attention row, in every layer
    for layer in range(a.depth):
        m1, m2 = attention_views.query_maps(a, layer, q1), attention_views.query_maps(a, layer, q2)
        assert np.array_equal(m1, a.attn[layer, :, q1, n:].reshape(m1.shape))
        assert not np.array_equal(m1, m2), layer

    # the pictures: different maps, not only a different outline
    img1 = views.query_overlay(a, 0, "1", q1, "inferno", 0.6)
    img2 = views.query_overlay(a, 0, "1", q2, "inferno", 0.6)
    cell = img1.shape[1] // gw
    mask = np.ones(img1.shape[:2], bool)
    for q in (q1, q2):
        r, c = divmod(q - n, gw)
        mask[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = False
    assert np.abs(img1.astype(int) - img2.astype(int))[mask].mean() > 1.0
    # the query patch is outlined in cyan on its own map
    r, c = divmod(q2 - n, gw)
    assert tuple(img2[r * cell + 1, c * cell + cell // 2]) == (0, 255, 255)

    # the page: another query gives other image bytes (media URLs are content hashes)
    before = _image_urls(at)
    rerun(at.slider(key="att_q").set_value(q2))
    after = _image_urls(at)
    assert before != after
    assert f"**{attention_views.token_label(a, q2)}** in layer 1, head 1" in words(at)
    rerun(at.slider(key="att_q").set_value(q1))
    assert _image_urls(at) == before  # the same view: the same picture


def test_pictures_travel_as_data_urls_of_the_shared_bytes():
    """Each picture is its cached JPEG/PNG inside the message, not a media file that every student's
    browser fetches again (cache.encoded(url=True), cache.picture_url)."""
    from io import BytesIO

    from PIL import Image

    for page in ("attention", "patches", "overview"):
        urls = _image_urls(run(page))
        assert urls, page
        for url in urls:
            head, _, body = url.partition(",")
            assert head in ("data:image/jpeg;base64", "data:image/png;base64"), (page, url[:40])
            img = Image.open(BytesIO(base64.b64decode(body)))
            assert img.format == head.split("/")[1].split(";")[0].upper() and min(img.size) >= 16, page
    # the same view twice: one encoding, the very same string
    assert _image_urls(run("attention")) == _image_urls(run("attention"))


def test_the_page_says_when_the_map_barely_depends_on_the_query():
    at = run("attention")
    a, _ = shown(at)
    L = a.depth
    alike = attention_views.query_similarity(a, L - 1, "mean")
    body = words(at)
    assert f"correlate at **{alike:.2f}** on average" in body
    if alike >= 0.8:
        assert "the same few patches whatever the query" in body and "That is the model, not the page" in body
    rerun(at.slider(key="att_layer").set_value(1))
    assert f"correlate at **{attention_views.query_similarity(a, 0, 'mean'):.2f}**" in words(at)
    # a query-independent map would correlate at 1, a random one near 0
    assert 0.0 < attention_views.query_similarity(a, 0, 1) < alike <= 1.0


# --- 3. the distance plot shows how many pairs each dot rests on -------------------------------------


def test_position_distance_plot_counts_its_pairs():
    at = run("position_embeddings")
    spec = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}["pos_dist"]
    trace = spec["data"][0]
    counts, sizes = array(trace["customdata"]), array(trace["marker"]["size"])
    _, loaded = shown(at)
    N = loaded.model.cfg.num_patches
    assert counts.sum() == N * (N - 1) // 2  # every pair of positions once
    assert counts[-1] == 2 and sizes[-1] < sizes.max() / 3  # the two corner-to-corner pairs: a small dot
    assert "pairs" in trace["hovertemplate"] and "number of pairs" in spec["layout"]["title"]["text"]
    prof = embeddings.distance_profile(loaded_similarity(at))
    body = words(at)
    assert f"only 2 pairs (corner to corner) at the largest distance, {prof.dist[-1]:.1f} cells" in body
    if prof.climb > 0.1:
        assert "climbs back at the right end" in body and f"{prof.border_from:.1f} cells on" in body


def array(v) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's typed-array encoding {"dtype", "bdata"}."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v)


def loaded_similarity(at: AppTest) -> np.ndarray:
    from pages._ui import cache

    return cache.get_model_figures(at.selectbox(key="model").value).pos_similarity


def test_distance_profile_on_a_known_grid():
    """A 5 x 5 grid whose embeddings encode only the distance from the centre: the far end climbs."""
    gh = gw = 5
    r, c = np.divmod(np.arange(gh * gw), gw)
    radius = np.hypot(r - 2, c - 2)
    emb = np.stack([np.cos(radius), np.sin(radius)], 1)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sim = (emb @ emb.T).reshape(gh * gw, gh, gw)
    prof = embeddings.distance_profile(sim, edge=0)
    assert prof.counts.sum() == 25 * 24 // 2 and prof.counts[-1] == 2
    assert prof.border_from is not None and prof.climb > 0.1
    assert abs(prof.corr_centre) > abs(prof.corr_distance)
    d, m = embeddings.similarity_by_distance(sim)
    assert np.allclose(d, prof.dist) and np.allclose(m, prof.means)


# --- 4. words: terms explained where they first appear, no doubled punctuation ----------------------


def test_terms_of_art_are_explained():
    at = run("attention")
    assert at.selectbox(key="att_fusion").help == lec.GLOSSARY["head fusion"]
    assert at.slider(key="att_discard").help == lec.GLOSSARY["discard ratio"]
    assert "(**head fusion**: their mean, maximum or minimum" in words(at)

    at = run("prediction")
    body = words(at)
    assert "R ← R + Ā R**, where R starts as the identity" in body
    lens = next(s for s in at.subheader if s.value.startswith("The logit lens"))
    assert lens.proto.help == lec.GLOSSARY["logit lens"]

    at = run("vit_in_numbers")
    body = words(at)
    first = body.index("core-day")
    assert body.index("one core-day is one TPU v3 core busy for 24 hours") <= first + 40
    assert "230 core-days (0.23k in the paper's notation)" in body
    assert "0.23k = 230" in lec.GLOSSARY["core-days"]
    assert all(lec.GLOSSARY[k] for k in ("fused attention", "relevance update"))


DOUBLED = re.compile(r"(?<![.\d])\.\.(?![.\d])|\)\.\)|\.\)\.|[,;:]\s*[,;:](?!\w)|\.\s+\.(?!\.)")


@pytest.mark.parametrize("page", MINE)
def test_no_doubled_punctuation(page):
    body = words(run(page))
    bad = [body[max(0, m.start() - 40):m.end() + 10] for m in DOUBLED.finditer(body)]
    assert not bad, bad


def test_sentence_helpers():
    assert lec.sentence("Dosovitskiy et al.") == "Dosovitskiy et al."
    assert lec.sentence("Liu et al") == "Liu et al."
    assert lec.clause("A ViT (95% validation accuracy).") == "A ViT (95% validation accuracy)"
    at = run("history", hist_event="ViT: An Image is Worth 16x16 Words")
    assert "**Dosovitskiy et al.** A plain Transformer" in words(at)


# --- 5. tables and sliders that read well on a projector --------------------------------------------


def test_table_2_is_a_real_table_open_on_a_projector():
    at = run("vit_in_numbers")
    exp = next(e for e in at.expander if e.label == "The whole of Table 2")
    assert not exp.proto.expanded
    table = next(t.value for t in at.table if "Noisy Student (EfficientNet-L2)" in t.value.columns)
    cells = table.to_numpy().ravel().tolist()
    assert "–" in cells and "-" not in cells  # a bare "-" renders as a Markdown bullet
    at = run("vit_in_numbers", present="1")
    assert next(e for e in at.expander if e.label == "The whole of Table 2").proto.expanded


def test_appendix_layer_and_head_sliders_stand_apart():
    at = run("appendix")
    layer, head = at.slider(key="app_layer"), at.slider(key="app_head")
    assert layer.label.startswith("Layer (1 to") and head.label.startswith("Head (1 to")
    # the two sliders sit side by side in one row, held apart by its widest gap
    rows = [b for b in at.container
            if {getattr(w, "key", None) for w in b.children.values()} >= {"app_layer", "app_head"}]
    assert len(rows) == 1, rows
    flex = rows[0].proto.flex_container
    assert flex.direction == flex.HORIZONTAL and flex.gap_config.gap_size == GapSize.XXLARGE
