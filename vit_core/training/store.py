"""Where trained models are kept: a folder per owner, a shared class folder, a bound on disk. UI-free.

Under the store's root (``VIT_MODELS_DIR`` in the app)::

    class/<name>.safetensors (+ .json)     the class run's models: every session lists them
    <owner>/<name>.safetensors (+ .json)   one visitor's models: only the session holding that
                                           owner token (``owner_of``) lists them
    *.safetensors, */model.safetensors     models saved before owners existed: listed for all
    .staging/                              a run's weights until they are kept or dropped

Every write is atomic: ``vit_core.io.loading.save_model`` writes a temporary file and
``os.replace``-s it (weights first, the sidecar last, and a model is listed only with both), and
adopting staged weights is ``os.replace`` again, so a replica reading the same folder never sees
half a file. The disk all models use is bounded (``VIT_MODELS_MAX_MB``, default 500): after each
save the oldest models are removed first, never the one just saved.
"""
from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vit_core.data.source import MEAN, STD
from vit_core.io import loading
from vit_core.training.config import TrainConfig

CLASS = "class"  # the owner of the class run's models
OWNER_KEY = "_models_owner"  # where a session keeps its owner token (see owner_of)
STAGING = ".staging"
STAGING_MAX_AGE_S = 6 * 3600  # staged weights nobody kept or dropped (a crash) go after this
_TOKEN = re.compile(r"[0-9a-f]{16,64}")


def owner_of(state: MutableMapping, create: bool = True) -> str | None:
    """The owner token kept in ``state`` (a session's state), made on first use when ``create``.

    Random, never the session id: a model's path shows in links, and a session id must not.
    """
    tok = state.get(OWNER_KEY)
    if tok is None and create:
        tok = state[OWNER_KEY] = secrets.token_hex(12)
    return tok


def default_max_mb() -> float:
    env = os.environ.get("VIT_MODELS_MAX_MB", "")
    try:
        return float(env) if float(env) > 0 else 500.0
    except ValueError:
        return 500.0


def data_config(cfg: TrainConfig) -> dict:
    """The preprocessing a model trained by ``cfg`` expects (what ``normalize`` applied)."""
    return {"input_size": [3, cfg.img_size, cfg.img_size], "mean": list(MEAN), "std": list(STD),
            "crop_pct": 1.0, "interpolation": "bicubic"}


def save_run(path, model: torch.nn.Module, cfg: TrainConfig, classes: list[str], done=None, **meta) -> Path:
    """Save a trained ViT with its training record (format vit-explainer/1); returns the .safetensors.

    ``path``: ``x.safetensors`` or a directory (then ``model.safetensors`` inside), as
    ``loading.save_model``. ``done``: the loop's Done event, whose outcome is recorded.
    """
    record = {"train_config": cfg.to_dict()}
    if done is not None:
        record.update(val_acc=done.val_acc, steps=done.steps, seconds=round(done.seconds, 1), reason=done.reason,
                      images_seen=done.steps * cfg.batch_size)
    record["torch"] = torch.__version__
    return loading.save_model(path, model.cpu(), list(classes), data_config(cfg), {**record, **meta})


def _pair(st: Path) -> tuple[Path, Path]:
    return st, st.with_suffix(".json")


@dataclass(frozen=True)
class ModelStore:
    """The trained models under ``root`` (picklable: a job's worker process stages into it)."""

    root: Path
    max_mb: float = field(default_factory=default_max_mb)

    def folder(self, owner: str) -> Path:
        if owner != CLASS and not _TOKEN.fullmatch(owner or ""):
            raise ValueError(f"Not an owner token: {owner!r}")
        return Path(self.root) / owner

    # -- reading --
    def own(self, owner: str | None) -> list[Path]:
        """The models of ``owner`` (a token, or CLASS), newest first."""
        if not owner:
            return []
        d = self.folder(owner)
        found = [p for p in d.glob("*.safetensors") if p.with_suffix(".json").is_file()] if d.is_dir() else []
        return sorted(found, key=_mtime, reverse=True)

    def listed(self, owner: str | None) -> list[Path]:
        """What ``owner``'s model picker lists: their own models, the class's, and older shared ones."""
        mine = self.own(owner) if owner != CLASS else []
        return mine + self.own(CLASS) + loading.list_user_models(self.root)

    def choices(self, owner: str | None) -> list[tuple[str, str]]:
        """(spec, label) pairs for a model picker."""
        out = []
        for p in self.listed(owner):
            label = "Class run" if p.parent.name == CLASS and p.parent.parent == Path(self.root) else "Trained here"
            out.append((f"file:{p}", f"{label}: {p.parent.name if p.stem == 'model' else p.stem}"))
        return out

    # -- writing --
    def staging_path(self, name: str) -> Path:
        d = Path(self.root) / STAGING
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{name}.safetensors"

    def adopt(self, staged: Path, owner: str) -> Path:
        """Move staged weights (+ sidecar) into ``owner``'s folder, then keep the disk bound."""
        d = self.folder(owner)
        d.mkdir(parents=True, exist_ok=True)
        st, js = _pair(Path(staged))
        dest = d / st.name
        os.replace(st, dest)
        os.replace(js, dest.with_suffix(".json"))  # the sidecar last: a model is listed only with both
        self.enforce_bound(keep=dest)
        return dest

    def discard(self, staged: Path | None) -> None:
        if staged is not None:
            for f in _pair(Path(staged)):
                f.unlink(missing_ok=True)

    def used_bytes(self) -> int:
        return sum(sum(f.stat().st_size for f in _pair(p) if f.is_file()) for p in self._all_models())

    def enforce_bound(self, keep: Path | None = None) -> list[Path]:
        """Remove the oldest models until all of them fit in ``max_mb``; returns what was removed."""
        self._clean_staging()
        limit = self.max_mb * 2**20
        models = sorted(self._all_models(), key=_mtime)  # oldest first
        used = sum(_size(p) for p in models)
        removed = []
        for p in models:
            if used <= limit:
                break
            if keep is not None and p == Path(keep):
                continue
            used -= _size(p)
            st, js = _pair(p)
            js.unlink(missing_ok=True)  # unlisted first, then the weights
            st.unlink(missing_ok=True)
            removed.append(p)
            if p.parent != Path(self.root) and p.parent.name != STAGING and not any(p.parent.iterdir()):
                p.parent.rmdir()
        return removed

    def _all_models(self) -> list[Path]:
        root = Path(self.root)
        if not root.is_dir():
            return []
        return [p for p in [*root.glob("*.safetensors"), *root.glob("*/*.safetensors")]
                if p.parent.name != STAGING]

    def _clean_staging(self) -> None:
        d = Path(self.root) / STAGING
        if d.is_dir():
            for f in d.iterdir():
                if time.time() - _mtime(f) > STAGING_MAX_AGE_S:
                    f.unlink(missing_ok=True)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in _pair(p) if f.is_file())


__all__ = ["CLASS", "OWNER_KEY", "ModelStore", "data_config", "default_max_mb", "owner_of", "save_run"]
