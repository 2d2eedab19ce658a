"""Parts few students open are drawn only when opened: the "In the code" expander."""
from __future__ import annotations

from tests.support.apptest import rerun, run


def test_code_box_sends_the_source_only_when_open():
    at = run("patch_embedding")
    closed = [c.value for c in at.code]
    assert not any("def " in c for c in closed)  # no source text on an ordinary run
    at.session_state["_code_open"] = True
    rerun(at)
    opened = [c.value for c in at.code]
    assert any(c.lstrip().startswith(("def ", "class ", "@")) for c in opened), opened[:1]


def test_large_models_compute_relevance_on_request(monkeypatch):
    """Above the size threshold the Prediction page asks before two backward passes per image."""
    from pages._ui import cache, heavy

    monkeypatch.setattr(cache, "RELEVANCE_ON_REQUEST_PARAMS", 0)  # the bundled model counts as large
    heavy.RESULTS.clear()
    at = run("prediction")
    assert not [k for k in _result_keys() if k[0] == "relevance"]  # nothing computed yet
    assert not any(m.value.startswith("**A:") for m in at.markdown)
    at.button(key="pred_rel_go").click()
    rerun(at)
    assert sum(k[0] == "relevance" for k in _result_keys()) == 2
    assert any(m.value.startswith("**A:") for m in at.markdown) and any(m.value.startswith("**B:") for m in at.markdown)
    assert any("Correlation between the two relevance maps" in m.value for m in at.markdown)


def _result_keys():
    from pages._ui import heavy

    with heavy.RESULTS._lock:
        return list(heavy.RESULTS._items)


def test_what_if_unchanged_run_is_the_analysis_without_a_forward_pass():
    """What if? opens on the image as it is: that run must equal a real forward pass, but cost none."""
    import numpy as np

    from pages._ui import cache, heavy, what_if_cache
    from pages._ui.site import SAMPLES
    from vit_core.analysis import interventions
    from vit_core.io import images

    data = (SAMPLES / "shapes-star.png").read_bytes()
    sha, spec = images.image_sha256(data), "bundled:shapes-vit"
    cache.get_analysis(spec, sha, data)
    gate_before = heavy.RESULTS.misses
    r0 = what_if_cache.wi_run(spec, sha, (), "mean", "learned", "", 224, data)
    assert heavy.RESULTS.misses == gate_before  # nothing computed or queued
    loaded, x = what_if_cache._wi_input(spec, sha, data, 224)
    r1 = interventions.run(loaded.model, x, loaded.data_config, "learned", None)
    assert np.array_equal(r0.probs, r1.probs) and np.allclose(r0.rollout, r1.rollout, atol=1e-7)
    assert np.array_equal(r0.image, r1.image) and r0.grid == r1.grid
    r2 = what_if_cache.wi_run(spec, sha, (3, 101, 150), "noise", "learned", "", 224, data)  # a change: a real run
    assert heavy.RESULTS.misses == gate_before + 1 and not np.array_equal(r2.probs, r0.probs)
