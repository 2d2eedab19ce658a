"""The exports of every view ("Data & code"): each recipe's script, run as printed against the bundled
model and a sample image, must give back the numbers the page puts in the .npz and the picture it
puts in the PNG; and the .npz writer keeps every array by name."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from vit_core.analysis import attention_views, explain, maps, patches
from vit_core.io import images, loading
from vit_core.render import drawing, export, figures, recipes, whatif_figures

SPEC = "bundled:shapes-vit"
SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "samples" / "shapes-star.png"

pytestmark = pytest.mark.skipif(loading.model_status(SPEC).state == "unavailable",
                                reason=f"{SPEC} is not built (make model)")


@pytest.fixture(scope="module")
def view(bundled):
    """What a page holds: the analysis of the sample, the model's figures, the image's bytes."""
    data = SAMPLE.read_bytes()
    a = explain.analyze(bundled.model, bundled.transform, bundled.data_config, images.load_image(data))
    return {"a": a, "mf": explain.model_figures(bundled.model), "data": data, "path": str(SAMPLE),
            "loaded": bundled}


def _recipes(v) -> dict[str, export.Recipe]:
    """One recipe of every kind, with the widget values a student might pick (not the defaults)."""
    a, mf, loaded = v["a"], v["mf"], v["loaded"]
    img = images.load_image(v["data"])
    plan = patches.preprocess_plan(loaded.transform, img.width, img.height, loaded.data_config)
    whole = plan.crop_box is not None and patches.keeps_everything(plan.crop_box, img.width, img.height)
    P, L = a.patch_size, a.depth
    s = attention_views.attention_step(a, explain.layer_qkv(loaded.model, a, 2), 2, 1, 30,
                                       explain.layer_attention(loaded.model, a, 2))
    roll = explain.rollout_with(a, "min", 0.1)
    x = loaded.transform(img).unsqueeze(0)  # (1, 3, H, W)
    rel = maps.class_relevance(loaded.model, x, 3).numpy()
    mosaic = drawing.labelled_mosaic(drawing.overlay_tiles(a.image, attention_views.cls_maps(a), "viridis", 0.5,
                                                           tile=60))
    return {
        "preprocess": recipes.preprocess(a, v["data"], plan.crop_box, whole),
        "numbered_grid": recipes.patch_grid(a, drawing.numbered_grid, P, 3, 23),
        "token_sequence": recipes.patch_grid(a, drawing.token_sequence, P, 23, 12, 80, True),
        "grid_other_size": recipes.patch_grid(a, drawing.grid_overlay, 8, 640),
        "patch_planes": recipes.patch_planes(a, 37, 150),
        "filter_pcs": recipes.filter_pcs(mf, 7, 96),
        "position_similarity": recipes.position_similarity(mf, "RdBu_r", False, 52, 20, "each tile: own scale"),
        "attention_scores": recipes.attention_row(a, s, 2, 1, 30, "scores"),
        "attention_weights": recipes.attention_row(a, s, 2, 1, 30, "weights"),
        "cls_mosaic": recipes.cls_mosaic(a, "viridis", 0.5, 60, mosaic),
        "query_mean": recipes.query_attention(a, L - 1, "mean", 17, "inferno", 0.6),
        "query_head": recipes.query_attention(a, 1, "2", 0, "magma", 0.4),
        "cls_layer": recipes.cls_layer(a, 1, "max", "cividis", 0.7),
        "rollout": recipes.rollout(a, roll, 2, "min", 0.1, "inferno", 0.6),
        "relevance": recipes.relevance(a, rel, 3, "turbo", 0.6),
    }


def _picture(png) -> np.ndarray:
    return png if isinstance(png, np.ndarray) else png[0](*png[1:])


def _run(code: str) -> dict:
    ns: dict = {}
    exec(compile(code, "<snippet>", "exec"), ns)
    return ns


KINDS = ["preprocess", "numbered_grid", "token_sequence", "grid_other_size", "patch_planes", "filter_pcs",
         "position_similarity", "attention_scores", "attention_weights", "cls_mosaic", "query_mean", "query_head",
         "cls_layer", "rollout", "relevance"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_printed_script_recomputes_the_npz_and_the_png(view, kind):
    r = _recipes(view)[kind]
    code = export.script(r, SPEC, view["path"])
    assert code.count(f"loading.load_model({SPEC!r})") == 1
    assert (view["path"] in code) == (r.needs == "analysis")
    ns = _run(code)
    with np.load(io.BytesIO(export.to_npz(**r.numbers()))) as npz:  # what the page's download holds
        saved = {k: npz[k] for k in npz.files}
    assert set(ns["numbers"]) == set(saved), code
    for k, want in saved.items():
        got = np.asarray(ns["numbers"][k])
        assert got.shape == want.shape, (k, got.shape, want.shape)
        assert np.allclose(got, want, atol=1e-5), (kind, k, float(np.abs(got - want).max()))
    picture = _picture(r.png)
    assert ns["picture"].shape == picture.shape and ns["picture"].dtype == np.uint8
    # colour maps quantise to bytes: a float difference of 1e-7 may move one channel by one step
    assert np.abs(ns["picture"].astype(int) - picture.astype(int)).max() <= 1, kind


def test_the_comparison_can_fail(view):
    """Another layer, head or query than the page's must not pass: the check above discriminates."""
    a = view["a"]
    s = attention_views.attention_step(a, explain.layer_qkv(view["loaded"].model, a, 2), 2, 1, 30,
                                       explain.layer_attention(view["loaded"].model, a, 2))
    page = recipes.attention_row(a, s, 2, 1, 30, "weights").numbers()
    wrong = recipes.attention_row(a, s, 1, 1, 30, "weights")  # code one layer lower than the page's numbers
    ns = _run(export.script(wrong, SPEC, view["path"]))
    assert not np.allclose(ns["numbers"]["weights"], page["weights"])
    assert "layer=1, head=1, query=30" in wrong.body


def test_a_recipe_defers_its_work(view):
    """Building a recipe and its script neither gathers the numbers nor draws the picture: a rerun
    pays for neither."""
    def refuse():
        raise AssertionError("gathered on a rerun")
    export.script(export.Recipe("picture = None\nnumbers = {}", refuse), SPEC, "your_image.png")
    a = view["a"]
    r = recipes.patch_grid(a, drawing.grid_overlay, 8, 640)
    assert isinstance(r.png, tuple) and r.png[0] is drawing.grid_overlay  # drawn on click
    assert set(r.numbers()) == {"model_view", "tiles"}  # no "patches": 8 px is not the model's patch size
    assert r.numbers()["tiles"].shape == ((a.image.shape[0] // 8) ** 2, 8, 8, 3)


def test_script_imports_what_the_body_uses():
    model_only = export.Recipe("picture = None\nnumbers = {'x': mf.grid}", dict, needs="model")
    code = export.script(model_only, SPEC, "ignored.png")
    assert "ignored.png" not in code and "import numpy" not in code and "mf = explain.model_figures" in code
    per_image = export.Recipe("numbers = {'v': np.zeros(1)}", dict, imports=("render.views", "analysis.maps"))
    code = export.script(per_image, "timm:vit_small_patch16_224", "your_image.png")
    lines = code.splitlines()
    assert "import numpy as np" in lines
    # one import line per package, the lowest layer first
    assert lines.index("from vit_core.io import images, loading") < lines.index(
        "from vit_core.analysis import explain, maps") < lines.index("from vit_core.render import views")
    assert "open('your_image.png', 'rb')" in code
    with pytest.raises(ValueError):
        export.script(export.Recipe("", dict, needs="nothing"), SPEC, "x.png")
    with pytest.raises(ValueError):
        recipes.patch_grid(None, figures.upscale, 16)


def test_to_npz_round_trip_and_none_left_out():
    data = export.to_npz(a=np.arange(6).reshape(2, 3), b=1.5, c=[1, 2], gone=None)
    with np.load(io.BytesIO(data)) as npz:  # allow_pickle=False: no object arrays inside
        assert sorted(npz.files) == ["a", "b", "c"]
        assert npz["a"].shape == (2, 3) and float(npz["b"]) == 1.5 and npz["c"].tolist() == [1, 2]
    assert whatif_figures.to_npz is export.to_npz  # the What if? page's old import still works
