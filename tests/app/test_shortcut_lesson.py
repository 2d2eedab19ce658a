"""Critics and impact, "What did this model learn?": the bundled model on one scene with and without
its class stripes, generated live.

The pair itself (vit_core.analysis.shortcut) is checked first: the same scene, only the stripes
differ. Then the page: it renders the section, shows both predictions as the model makes them, and
the class selectbox follows the URL (bind="query-params").
"""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from pages._ui import cache, site
from tests.support.apptest import rerun, run
from vit_core.analysis import shortcut
from vit_core.data.shapes import CLASSES, ShapesConfig
from vit_core.io import loading

pytestmark = pytest.mark.skipif(
    loading.model_status(site.DEFAULT_SPEC).state == "unavailable",
    reason=f"{site.DEFAULT_SPEC} is not built (make model)",
)
SECTION = "What did this model learn?"


def predictions(at) -> list[str]:
    """The 'Prediction: **name** (p = 0.xx)' lines the section showed, in order."""
    return [m.value for m in at.markdown if m.value.startswith("Prediction: **")]


def test_stripe_pair_differs_only_in_the_stripes():
    cfg = shortcut.card_config(site.DEFAULT_SPEC)
    assert cfg.fill_texture > 0 and shortcut.without_stripes(cfg) == ShapesConfig()  # the card's data, stripes off
    striped, plain = shortcut.stripe_pair(cfg, CLASSES.index("star"), shortcut.lesson_seed(3))
    assert (striped.label, plain.label) == (CLASSES.index("star"),) * 2
    assert torch.equal(striped.mask, plain.mask)  # same object, same place, same size and turn
    differs = (striped.image != plain.image).any(0)
    # Only on the object: its mask grown by 2 px for the anti-aliased edge (alpha <= 0.5 is off-mask).
    near_object = F.max_pool2d(striped.mask[None, None].float(), 5, 1, 2)[0, 0].bool()
    assert differs.any() and not (differs & ~near_object).any()
    assert differs.sum() > 0.5 * striped.mask.sum()  # the stripes cover the object, not a few pixels


def test_section_shows_both_predictions_live():
    at = run("critics_impact")
    assert SECTION in [h.value for h in at.header]
    assert at.selectbox(key="shortcut_class").value == "ring" and at.number_input(key="shortcut_scene").value == 0
    shown = predictions(at)
    assert len(shown) == 2, shown
    readings, _ = cache.shortcut_pair(site.DEFAULT_SPEC, CLASSES.index("ring"), 0)
    names = cache.get_model(site.DEFAULT_SPEC).class_names
    for line, r in zip(shown, readings):  # with stripes, then without: what the model really said
        assert line.startswith(f"Prediction: **{names[r.top]}** (p = {r.top_p:.2f})"), (line, r.top, r.top_p)
        assert ("right" in line) == r.correct
    assert [r.stripes for r in readings] == [shortcut.card_config(site.DEFAULT_SPEC).fill_texture, 0.0]
    pairs = [img for img in at.get("image") if any("attention rollout" in c for c in img.captions)]
    assert len(pairs) == 2 and all(len(img.captions) == 2 for img in pairs)  # input + rollout, twice
    counts = next(m.value for m in at.markdown if m.value.startswith("**Not just this scene.**"))
    assert re.search(r"right on \*\*\d+%\*\* with the stripes and \*\*\d+%\*\* without", counts), counts
    assert "Geirhos" in "\n".join(m.value for m in at.markdown)


def test_class_follows_the_selectbox_and_the_url():
    """A deep link (?shortcut_class=heart&shortcut_scene=2) restores the view; the selectbox moves it."""
    at = run("critics_impact", shortcut_class="heart", shortcut_scene="2")
    assert at.selectbox(key="shortcut_class").value == "heart"
    assert at.number_input(key="shortcut_scene").value == 2
    readings, _ = cache.shortcut_pair(site.DEFAULT_SPEC, CLASSES.index("heart"), 2)
    names = cache.get_model(site.DEFAULT_SPEC).class_names
    assert [p.split("**")[1] for p in predictions(at)] == [names[r.top] for r in readings]
    at = rerun(at.selectbox(key="shortcut_class").set_value("star"))
    readings, _ = cache.shortcut_pair(site.DEFAULT_SPEC, CLASSES.index("star"), 2)
    assert [p.split("**")[1] for p in predictions(at)] == [names[r.top] for r in readings]
    # (AppTest's query_params hold what the test sent, not the widget's write-back, so the other
    # direction, widget -> URL, is Streamlit's bind="query-params" and not checked here.)
