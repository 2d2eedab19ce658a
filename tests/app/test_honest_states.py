"""Honest states: a lost upload says so; a photo on the Shapes model says what the model knows."""
from __future__ import annotations

from tests.support.apptest import run


def _texts(at) -> str:
    return "\n".join(e.value for kind in ("warning", "info", "error") for e in getattr(at, kind))


def test_reload_with_source_upload_and_no_file_says_so():
    at = run("prediction", source="Upload")
    text = _texts(at)
    assert "No photo here yet" in text and "Upload it" in text
    assert at.selectbox(key="sample").value  # the page still shows something real meanwhile


def test_sample_source_shows_no_upload_message():
    at = run("prediction", source="Sample", sample="shapes-star.png")
    assert "No photo here yet" not in _texts(at)


def test_a_photo_on_the_shapes_model_is_explained():
    at = run("prediction", sample="grace_hopper.jpg")
    assert "This model only knows shapes" in _texts(at)
    at = run("prediction", sample="shapes-star.png")
    assert "This model only knows shapes" not in _texts(at)
