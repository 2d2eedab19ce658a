"""Take a view with you: the numbers behind a figure as .npz and the script that recomputes them.

A ``Recipe`` is what one exported view needs: the picture to download (a ``(build, *args)``
tuple or an array), the numbers behind it (a callable, so that nothing is gathered before a
click) and the body of a Python script that recomputes both with vit_core. ``script`` puts the
lines that load the model and the image in front of the body. The recipes of the explainer
pages are in ``vit_core.render.recipes``.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# What a script must have computed before a recipe's body runs.
NEEDS = ("model", "analysis")
_LAYER_ORDER = {"io": 0, "analysis": 1, "render": 2}  # imports listed bottom layer first


def to_npz(**arrays) -> bytes:
    """The arrays in one compressed .npz file (np.load gives them back by name).

    None values are left out: a model without [CLS] has no rollout, and np.load would refuse
    the pickled object array that np.asarray(None) makes.
    """
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items() if v is not None})
    return buf.getvalue()


@dataclass(frozen=True)
class Recipe:
    """One exported view: its picture, the numbers behind it and the code that recomputes them.

    Attributes:
        body: script lines run after ``script``'s prelude; they must leave ``numbers`` (a dict
            with the same keys and values as ``numbers()``) and ``picture`` (the PNG's array).
        numbers: gathers the arrays for the .npz, called only when the download is clicked.
        png: ``(build, *args)`` drawn on click, or an (H, W, 3) uint8 array, or None.
        imports: the vit_core modules the body uses, as "package.module" ("render.views").
        needs: "analysis" (the image traced through the model: ``a``) or "model" (weights only:
            ``lm`` and ``mf``, the model's figures).
    """

    body: str
    numbers: Callable[[], dict[str, Any]]
    png: Any = None
    imports: Sequence[str] = ()
    needs: str = "analysis"


def script(recipe: Recipe, spec: str, image_path: str) -> str:
    """The whole runnable script of ``recipe``: imports, loading the model and the image, its body.

    Built from short strings only: pages call this on every rerun.

    Args:
        recipe: the view's recipe.
        spec: the model spec, as ``vit_core.io.loading.load_model`` takes it.
        image_path: the image file the script opens: a sample's path relative to the project
            root, or the name of the visitor's own file (unused when ``recipe.needs == "model"``).

    Returns:
        Python source that leaves ``numbers`` and ``picture`` defined.

    Raises:
        ValueError: ``recipe.needs`` is not one of NEEDS.
    """
    if recipe.needs not in NEEDS:
        raise ValueError(f"needs must be one of {NEEDS}, got {recipe.needs!r}")
    mods: dict[str, set[str]] = {"io": {"loading"}, "analysis": {"explain"}}
    if recipe.needs == "analysis":
        mods["io"].add("images")
    for m in recipe.imports:
        pkg, _, name = m.partition(".")
        mods.setdefault(pkg, set()).add(name)
    lines = ["# Recomputes this view with vit_core; run it from the project's root folder."]
    if "np." in recipe.body:
        lines.append("import numpy as np")
    lines.append("")
    lines += [f"from vit_core.{pkg} import {', '.join(sorted(names))}"
              for pkg, names in sorted(mods.items(), key=lambda kv: _LAYER_ORDER.get(kv[0], len(_LAYER_ORDER)))]
    lines += ["", f"lm = loading.load_model({spec!r})"]
    if recipe.needs == "model":
        lines.append("mf = explain.model_figures(lm.model)  # depends on the weights only, not on an image")
    else:
        lines += [f"data = open({image_path!r}, 'rb').read()", "img = images.load_image(data)",
                  "a = explain.analyze(lm.model, lm.transform, lm.data_config, img)  # every per-image array"]
    return "\n".join(lines + ["", recipe.body.strip(), ""])


__all__ = ["NEEDS", "Recipe", "script", "to_npz"]
