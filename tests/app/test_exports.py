"""AppTest runs of "Take it with you": every picture of the explainer pages has a "Download" popover
with its PNG, the numbers behind it as .npz and a script. The .npz is the page's own
(its deferred download called as a click would), and the script, run as printed from the project
root, must recompute exactly those numbers."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from pages._ui import site, widgets
from pages._ui.sidebar import Ctx
from tests.support.apptest import ROOT, data_and_code, open_all, rerun, run, square_png, upload
from vit_core.io import images, loading

pytestmark = pytest.mark.skipif(loading.model_status(site.DEFAULT_SPEC).state == "unavailable",
                                reason=f"{site.DEFAULT_SPEC} is not built (make model)")

# page -> how many pictures it exports on the default model and sample
PAGES = {"patches": 5, "patch_embedding": 2, "position_embeddings": 1, "self_attention": 2, "attention": 4,
         "prediction": 3}


@pytest.fixture
def deferred(monkeypatch) -> dict:
    """file id -> (file name, callable) of every deferred download the page registers."""
    made: dict = {}
    original = MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        file_id = original(self, data_callable, mimetype, coordinates, file_name, **kwargs)
        made[file_id] = (file_name, data_callable)
        return file_id
    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return made


def takeaways(at: AppTest, deferred: dict) -> list[tuple[str, dict, str]]:
    """(file name, arrays, code) of every "Download" popover, opened, its .npz fetched as a click would."""
    out = []
    for pop in data_and_code(open_all(at)):
        kids = list(pop.children.values())
        buttons = [k for k in kids if k.type == "download_button"]
        button = next(k for k in buttons if k.proto.label == "Numbers (.npz)")
        code = next((k.value for k in kids if k.type == "code"), "")
        name, make = deferred[button.proto.deferred_file_id]
        assert name.endswith(".npz")
        # the picture's PNG, where the view has one, sits in the same popover under the same name
        assert [deferred[b.proto.deferred_file_id][0] for b in buttons if b is not button] in ([], [name[:-4] + ".png"])
        with np.load(io.BytesIO(make())) as npz:  # allow_pickle=False: plain arrays only
            out.append((name, {k: npz[k] for k in npz.files}, code))
    return out


def run_from_root(code: str) -> dict:
    ns: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)  # the scripts open the samples by their path from the project root
    try:
        exec(compile(code, "<snippet>", "exec"), ns)
    finally:
        os.chdir(cwd)
    return ns


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_picture_takes_its_numbers_and_code_along(page, deferred):
    at = run(page)
    found = takeaways(at, deferred)
    assert len(found) == PAGES[page], [f[0] for f in found]
    pngs = [n for n, _ in deferred.values() if n.endswith(".png")]
    for name, arrays, code in found:
        assert name[:-4] + ".png" in pngs  # the PNG beside it, same name
        assert arrays and "loading.load_model('bundled:shapes-vit')" in code
        ns = run_from_root(code)
        assert set(ns["numbers"]) == set(arrays), name
        for k, want in arrays.items():
            got = np.asarray(ns["numbers"][k])
            assert got.shape == want.shape and np.allclose(got, want, atol=1e-5), (name, k)
        assert ns["picture"].dtype == np.uint8 and ns["picture"].ndim == 3


def test_the_exports_follow_the_widgets(deferred):
    """Moving layer, head and query changes the page's .npz and the printed code together."""
    at = run("self_attention")
    at.slider(key="sa_layer").set_value(2)
    at.slider(key="sa_head").set_value(3)
    at.slider(key="sa_q").set_value(9)
    rerun(at)
    name, arrays, code = takeaways(at, deferred)[0]
    assert name == "scores-L2-H3-q9.npz" and "attention_step(a, qkv, layer=1, head=2, query=9, attn=attn)" in code
    ns = run_from_root(code)
    assert np.allclose(ns["numbers"]["scores"], arrays["scores"])


def test_what_if_uses_the_shared_exports(deferred):
    at = run("what_if", wi_follow="true")
    found = []
    for label in ("Hide patches", "Shuffle", "Positions and readout", "Another size", "Follow one patch"):
        at.session_state["wi_tab"] = label  # one experiment per tab: each tab's exports in turn
        found += takeaways(rerun(at), deferred)
    assert len(found) >= 10
    assert all(code.startswith("from vit_core.io import images, loading") for _, _, code in found)
    hidden = next(arrays for name, arrays, _ in found if name == "what-if-hidden.npz")
    assert set(hidden) >= {"hidden", "probs", "rollout"}


def test_an_upload_is_named_in_the_code(deferred):
    at = run("attention")
    upload(at, "red.png", square_png("red"))
    codes = [code for _, _, code in takeaways(at, deferred)]
    assert codes and all("open('red.png', 'rb')" in c and "assets/samples" not in c for c in codes)


def test_image_path():
    data = (site.SAMPLES / "shapes-star.png").read_bytes()

    def ctx(name: str, blob: bytes) -> Ctx:
        return Ctx(spec=site.DEFAULT_SPEC, loaded=None, image_name=name, image_bytes=blob,
                   sha=images.image_sha256(blob), device="cpu")
    assert widgets.image_path(ctx("shapes-star.png", data)) == "assets/samples/shapes-star.png"
    # an upload that happens to share a sample's name is not that sample
    assert widgets.image_path(ctx("shapes-star.png", square_png("red"))) == "shapes-star.png"
    assert widgets.image_path(ctx("camera", square_png("red"))) == "your_image.png"
