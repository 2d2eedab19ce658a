"""The What if? page's shared results: interventions, faithfulness checks, one patch's life.

Keys: (spec, image SHA-256, view parameters); the image bytes and the Analysis ride along unhashed.
Each entry runs on the shared model without changing it (functional forward, deep copies), through
the fair queue (:func:`cache.gated`), so a waiting student sees the place in line.
"""
from __future__ import annotations

import numpy as np
import torch

from pages._ui import heavy
from pages._ui.cache import gated, get_analysis, get_model
from vit_core.analysis import explain, maps
from vit_core.io import images


def _wi_input(spec: str, sha: str, data: bytes, size: int | None = None):
    """(loaded model, normalised input (1, 3, H, W) on the model's device), at ``size`` px if given."""
    from vit_core.analysis import interventions

    loaded = get_model(spec)
    size = size if size and size != loaded.model.cfg.img_size else None

    def compute() -> torch.Tensor:
        image = images.load_image(data)
        if size:
            x = interventions.input_at_size(image, loaded.data_config, size, loaded.model.cfg.patch_size)
        else:
            x = loaded.transform(image).unsqueeze(0)  # (1, 3, H, W)
        return x.to(next(loaded.model.parameters()).device)
    # decoded once per (model, image, size): each What if? click would otherwise decode and resize the
    # upload again (7 ms of a 60 ms click on the bundled model). Callers never write into it.
    return loaded, heavy.LIGHT.get(("wi_input", spec, sha, size), compute)


def wi_run(spec: str, sha: str, hidden: tuple[int, ...], mode: str, pos: str, readout: str, size: int,
           _data: bytes):
    """One intervention: ``hidden`` patches replaced (``mode``), position embeddings ``pos``,
    ``readout`` ("" = as trained), input ``size`` px. An interventions.Run (image, probs, rollout)."""
    from vit_core.analysis import interventions

    loaded = get_model(spec)
    if not hidden and pos == "learned" and not readout and size == loaded.model.cfg.img_size:
        # Nothing changed: the image's own analysis already holds this run (the What if? page opens
        # on it), so a class uploading photos does not queue one more forward pass each.
        a = get_analysis(spec, sha, _data)
        roll = None
        if loaded.model.cfg.class_token:
            roll = maps.rollout_map(torch.from_numpy(a.rollout), a.rollout.shape[0], a.grid,
                                    a.num_prefix_tokens).numpy()
        return interventions.Run(a.image, a.probs, roll, a.grid)

    def compute():
        loaded, x = _wi_input(spec, sha, _data, size)
        if hidden:
            x = interventions.mask_patches(x, list(hidden), loaded.model.cfg.patch_size, mode)
        return interventions.run(loaded.model, x, loaded.data_config, pos, readout or None)
    return gated(('wi_run', spec, sha, hidden, mode, pos, readout, size), compute)


def wi_saliency(spec: str, sha: str, method: str, _data: bytes) -> np.ndarray:
    """A saliency map (gh, gw): raw_attention, rollout, chefer (predicted class) or random."""
    def compute():
        from vit_core.analysis import faithfulness

        loaded, x = _wi_input(spec, sha, _data)
        return faithfulness.explanation_map(loaded.model, x, method)
    return gated(('wi_saliency', spec, sha, method,), compute)


def wi_shuffle(spec: str, sha: str, pos: str, seed: int, _data: bytes):
    """(interventions.ShuffleResult, the shuffled input as the model sees it (H, W, 3) uint8)."""
    def compute():
        from vit_core.analysis import interventions

        loaded, x = _wi_input(spec, sha, _data)
        r = interventions.shuffle_check(loaded.model, x, pos, seed)
        return r, explain.image_view(r.shuffled[0], loaded.data_config)
    return gated(('wi_shuffle', spec, sha, pos, seed,), compute)


def wi_deletion(spec: str, sha: str, method: str, steps: int, insert_from: str, _data: bytes):
    """faithfulness.DeletionInsertion of one map (deleted patches take the mean colour)."""
    sal = wi_saliency(spec, sha, method, _data)  # outside compute(): never hold two queue slots

    def compute():
        from vit_core.analysis import faithfulness

        loaded, x = _wi_input(spec, sha, _data)
        return faithfulness.deletion_insertion(loaded.model, x, sal, steps=steps, insert_from=insert_from)
    return gated(('wi_deletion', spec, sha, method, steps, insert_from,), compute)


def wi_randomization(spec: str, sha: str, method: str, seed: int, _data: bytes):
    """faithfulness.Randomization: the map while the weights are re-initialised top down (a copy)."""
    def compute():
        from vit_core.analysis import faithfulness

        loaded, x = _wi_input(spec, sha, _data)
        return faithfulness.randomization_check(loaded.model, x, method, seed=seed)
    return gated(('wi_randomization', spec, sha, method, seed,), compute)


def wi_patch_lens(spec: str, sha: str, _a) -> tuple[np.ndarray, np.ndarray]:
    """Top-5 classes and probabilities of every token after every block: (L, T, 5) each."""
    def compute():
        from vit_core.analysis import patch_life

        return patch_life.patch_lens(get_model(spec).model, _a.tokens)
    return gated(('wi_patch_lens', spec, sha,), compute)