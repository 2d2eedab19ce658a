"""AppTest runs of the What if? page: every section on a sample and on an upload, the numbers shown
checked against the same cache entries, deep links restoring the view, and the page's code snippets
run as printed."""
from __future__ import annotations

import contextlib
import io
import os
import re

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from pages._ui import cache, sidebar, what_if_cache
from tests.support.apptest import ROOT, open_all, rerun, run, shown, square_png, upload
from vit_core.analysis import faithfulness


def text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "success", "warning", "error", "info")
    parts = [e.value for kind in kinds for e in getattr(at, kind)]
    return "\n".join(parts + [c for img in at.get("image") for c in img.captions])


def hidden_line(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "patches hidden. Prediction" in m.value)


TABS = {"Hide patches": "Hide patches", "Shuffle": "Shuffle the patches",
        "Positions and readout": "Take the position embeddings away", "Another size": "Another input size",
        "Follow one patch": "Follow one patch", "Do the maps tell the truth?": "Do the maps tell the truth?"}


def tab(at: AppTest, label: str) -> AppTest:
    """Shows one tab of the page, as a click on it does (only the open tab runs)."""
    at.session_state["wi_tab"] = label
    return rerun(at)


def headings(at: AppTest) -> list[str]:
    """The section headings shown: each is the first line ("### ...") of its section's text."""
    return [m.value.split("\n", 1)[0][4:] for m in at.main.markdown if m.value.startswith("### ")]


def test_each_tab_runs_alone():
    at = run("what_if")
    assert headings(at) == ["Hide patches"]  # the other experiments cost nothing
    for label, heading in TABS.items():
        tab(at, label)
        assert heading in headings(at)[:1], (label, headings(at))
        assert not any(h in TABS.values() for h in headings(at) if h != heading)


def test_sample_every_section(monkeypatch):
    at = run("what_if", wi_truth="true", wi_follow="true")
    a, loaded = shown(at)
    spec, sha, data = loaded.spec, *_sample(at)
    names, pred = loaded.class_names, int(a.probs.argmax())
    assert hidden_line(at).startswith(f"0 of {a.grid[0] * a.grid[1]} patches hidden. Prediction: **{names[pred]}**")
    body = "\n".join(text(tab(at, label)) for label in TABS)
    assert "App. D.4, Table 8" in body and "Sec. 3.2" in body and "Petsiuk" in body and "Adebayo" in body
    tab(at, "Hide patches")

    # hide the 30 most-attended patches (rollout): the shown probability is the cache's, and lower
    top = np.argsort(a.rollout[-1][0, 1:])[::-1][:30].tolist()
    at.multiselect(key="wi_masked").set_value(sorted(top))
    rerun(at)
    r = what_if_cache.wi_run(spec, sha, tuple(sorted(top)), "mean", "learned", "", 224, data)
    assert hidden_line(at).startswith("30 of 196 patches hidden")
    assert f"{names[pred]} {a.probs[pred]:.1%} → **{r.probs[pred]:.1%}**" in hidden_line(at)
    assert r.probs[pred] < a.probs[pred] - 0.05
    at.selectbox(key="wi_mode").set_value("blur")
    rerun(at)
    rb = what_if_cache.wi_run(spec, sha, tuple(sorted(top)), "blur", "learned", "", 224, data)
    assert f"→ **{rb.probs[pred]:.1%}**" in hidden_line(at)

    # top-k of a map vs k random
    rerun(at.radio(key="wi_hide").set_value("topk"))
    rerun(at.slider(key="wi_k").set_value(20))
    line = next(m.value for m in at.markdown if "must hurt more than hiding" in m.value)
    assert "hiding its top 20 patches" in line and re.search(r"\*\*[+-][0-9.]+%\*\* lost vs \*\*[+-][0-9.]+%\*\*", line)

    # shuffle: without position embeddings the outputs are the same set
    tab(at, "Shuffle")
    at.radio(key="wi_shuf_pos").set_value("none")
    rerun(at)
    ok = next(s.value for s in at.success if "shuffled order" in s.value)
    diff = float(re.search(r"by at most \*\*([0-9.e+-]+)\*\*", ok).group(1))
    assert diff < 1e-5 and "cannot tell the shuffle" in ok
    at.radio(key="wi_shuf_pos").set_value("learned")
    rerun(at)
    assert any("let the model see the shuffle" in s.value for s in at.success)

    # another input size
    tab(at, "Another size")
    at.radio(key="wi_size").set_value(160)
    rerun(at)
    assert "**101** tokens (197 at 224 px)" in text(at)

    # deletion/insertion table = the cache's figures; randomisation strip and chart shown
    table = tab(at, "Do the maps tell the truth?").table[0].value
    res = what_if_cache.wi_deletion(spec, sha, "rollout", 16, "blur", data)
    row = table[table["map"] == faithfulness.METHOD_NAMES["rollout"]].iloc[0]
    assert row["deletion area (lower is better)"] == f"{res.deletion_auc:.3f}"
    assert row["insertion area (higher is better)"] == f"{res.insertion_auc:.3f}"

    # follow one patch: layer and patch sliders move the captions
    tab(at, "Follow one patch")
    at.slider(key="wi_layer").set_value(1)
    at.slider(key="wi_patch").set_value(0)
    rerun(at)
    assert "Token norms after block 1" in text(at) and "Patch 0 alone would say" in text(at)


def _sample(at: AppTest) -> tuple[str, bytes]:
    from pages._ui.site import SAMPLES
    from vit_core.io import images

    data = (SAMPLES / at.selectbox(key="sample").value).read_bytes()
    return images.image_sha256(data), data


def test_deep_link_restores_the_view():
    """Bound widgets with a format_func carry the label shown in the URL (Streamlit's choice); the tab
    is in the link too, so a student's phone opens the experiment on the projector."""
    at = run("what_if", wi_hide="top-k of a map vs k random", wi_k="7", wi_mode="random noise")
    assert at.radio(key="wi_hide").value == "topk" and at.slider(key="wi_k").value == 7
    assert at.selectbox(key="wi_mode").value == "noise"
    at = run("what_if", wi_tab="Shuffle", wi_shuf_pos="all the same (their mean)")
    assert at.radio(key="wi_shuf_pos").value == "mean"
    at = run("what_if", wi_tab="Another size", wi_size="288")
    assert at.radio(key="wi_size").value == 288 and "**325** tokens" in text(at)
    at = run("what_if", wi_tab="Follow one patch", wi_follow="true", wi_patch="20", wi_layer="2", wi_head="head 1")
    assert (at.slider(key="wi_patch").value, at.slider(key="wi_layer").value) == (20, 2)
    assert at.selectbox(key="wi_head").value == "1"
    at = run("what_if", wi_tab="Do the maps tell the truth?", wi_truth="true", wi_rand_method="attention rollout",
             wi_steps="8")
    assert at.slider(key="wi_steps").value == 8 and at.selectbox(key="wi_rand_method").value == "rollout"
    at = run("what_if", wi_masked=["3", "17"])
    assert at.multiselect(key="wi_masked").value == [3, 17] and hidden_line(at).startswith("2 of 196")


def test_upload():
    at = run("what_if")
    before = text(at)
    upload(at, "red.png", square_png("red"))
    assert not at.error and text(at) != before
    assert hidden_line(at).startswith("0 of 196 patches hidden")
    at.multiselect(key="wi_masked").set_value(list(range(40, 120)))
    rerun(at)
    assert hidden_line(at).startswith("80 of 196") and not at.error
    # the code boxes name the upload, not a sample
    open_all(at)
    assert any("open('red.png', 'rb')" in c.value for c in at.code)
    assert not any("assets/samples" in c.value for c in at.code)


def test_the_printed_code_runs(tmp_path):
    """Each 'Data & code' snippet is valid, runs against vit_core and prints its numbers."""
    at = run("what_if", wi_truth="true", wi_follow="true")
    snippets = []
    for label in TABS:
        open_all(tab(at, label))
        snippets += [c.value for c in at.code if c.value.startswith("from vit_core.io import images, loading")]
    assert len(snippets) >= 12
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for code in snippets:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, "<snippet>", "exec"), {})
            assert out.getvalue().strip(), code
    finally:
        os.chdir(cwd)


# --- unusual models: no class head, no [CLS] token -------------------------------------------------
def _tiny(tmp_path, name: str, **cfg) -> str:
    from vit_core.io import loading
    from vit_core.model import ViTConfig, VisionTransformer

    torch.manual_seed(0)
    vit = ViTConfig(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, **cfg)
    dc = {"input_size": [3, 32, 32], "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.5] * 3,
          "crop_pct": 1.0, "crop_mode": "center"}
    path = loading.save_model(tmp_path / f"{name}.safetensors", VisionTransformer(vit).eval(),
                              [f"thing {i}" for i in range(vit.num_classes)], dc)
    return f"file:{path}"


@pytest.mark.parametrize("kind", ["features", "no_cls"])
def test_unusual_models(tmp_path, monkeypatch, kind):
    cfg = {"num_classes": 0} if kind == "features" else {"num_classes": 3, "class_token": False, "global_pool": "avg"}
    spec = _tiny(tmp_path, kind, **cfg)
    monkeypatch.setattr(sidebar, "model_choices", lambda: [(spec, f"tiny {kind}")])
    monkeypatch.setattr(sidebar, "default_spec", lambda: spec)
    at = run("what_if", wi_follow="true")
    body = text(tab(at, "Follow one patch"))
    assert "Token norms after block 2" in body
    if kind == "features":
        assert "no classification head" in body
    else:
        assert "no [CLS] token" in text(tab(at, "Do the maps tell the truth?"))
        tab(at, "Hide patches")
        assert "patches hidden" in hidden_line(at)
        at.radio(key="wi_hide").set_value("topk")
        rerun(at)
        assert "no [CLS] token" in text(at)


def test_presentation_mode_enlarges_every_chart():
    """?present=1: the charts' smallest text (ticks, legends, colour bars) is 24 px, as on the other pages."""
    import json

    at = run("what_if", present="1", wi_truth="true", wi_follow="true")
    specs = {}
    for label in TABS:
        specs.update({c.key: json.loads(c.proto.spec) for c in tab(at, label).get("plotly_chart")})
    assert {"wi_top5_hidden", "wi_deletion", "wi_insertion", "wi_rand_corr", "wi_traj", "wi_lens"} <= set(specs)
    for key, spec in specs.items():
        lay = spec["layout"]
        sizes = [lay["font"]["size"]] + [ax["tickfont"]["size"] for name, ax in lay.items()
                                         if name.startswith(("xaxis", "yaxis")) and "tickfont" in ax]
        assert min(sizes) >= 24, (key, sizes)


def test_the_experiments_pictures_are_encoded_once_and_follow_the_view():
    """The Shuffle, Follow one patch and randomisation pictures travel as data URLs made once per
    view and shared (an array given to st.image is encoded again on every run of every student)."""
    def urls(at):
        return [i.url for img in at.get("image") for i in img.proto.imgs]

    views = [dict(wi_tab="Shuffle", wi_shuf_seed="3"),
             dict(wi_tab="Follow one patch", wi_follow="true", wi_patch="20", wi_layer="2"),
             dict(wi_tab="Do the maps tell the truth?", wi_truth="true", wi_steps="2")]
    for q in views:
        first = urls(run("what_if", **q))
        assert first and all(u.startswith(("data:image/jpeg;base64,", "data:image/png;base64,")) for u in first), q
        assert urls(run("what_if", **q)) == first, q  # a second session: the very same strings
    moved = urls(run("what_if", wi_tab="Shuffle", wi_shuf_seed="4"))
    assert moved != urls(run("what_if", **views[0]))  # another shuffle, another picture
    follow = urls(run("what_if", **views[1]))
    assert len(follow) == 5 and len(set(follow)) == 5  # five different views of the patch
    other = urls(run("what_if", **{**views[1], "wi_patch": "21"}))
    assert other[0] != follow[0]  # where the next patch looks
