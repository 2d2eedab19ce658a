"""The Overview's "Watch it once" animation, as the browser gets it: on the page, animated, shared.

In both modes the page must show one plotly chart with animation frames, a slider and Play/Pause,
sized for the mode (24 px text on the projector), and a second run must reuse the same cached
figure rather than build it again.
"""
from __future__ import annotations

import json

import pytest

from pages._ui import site
from tests.support.apptest import rerun, run
from vit_core.io import loading

pytestmark = pytest.mark.skipif(
    loading.model_status(site.DEFAULT_SPEC).state == "unavailable",
    reason=f"{site.DEFAULT_SPEC} is not built (make model)",
)

STEPS = ["patches", "flatten", "embed", "[CLS]", "+ pos", "block 1", "block 2", "predict"]


def walk_spec(at) -> dict:
    specs = {c.key: c.proto.spec for c in at.get("plotly_chart")}
    assert "ov_walk" in specs, sorted(specs)
    assert len(specs["ov_walk"]) < 1_500_000  # bytes to every student's browser
    return json.loads(specs["ov_walk"])


@pytest.mark.parametrize("present, size", [("0", 16), ("1", 24)])
def test_overview_plays_the_walk(present, size):
    at = run("overview", present=present)
    if present == "0":  # closed until asked for, off the projector: nothing built or sent
        assert "ov_walk" not in {c.key for c in at.get("plotly_chart")}
        at.session_state["ov_walk_open"] = True
        rerun(at)
    spec = walk_spec(at)
    assert [f["name"] for f in spec["frames"]] == STEPS
    lay = spec["layout"]
    assert [s["label"] for s in lay["sliders"][0]["steps"]] == STEPS
    assert {b["args"][0] is None or b["args"][0] == [None] for b in lay["updatemenus"][0]["buttons"]} == {True}
    assert lay["font"]["size"] == size and lay["sliders"][0]["font"]["size"] == size
    assert lay["title"]["text"].startswith("Your image")
    assert "Press Play" in " ".join(c.value for c in at.caption)
    assert walk_spec(rerun(at)) == spec  # the same shared figure on the next run
