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
