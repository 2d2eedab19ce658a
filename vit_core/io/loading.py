"""Load a ViT for the explainer from a spec string, offline first.

Specs:
    ``timm:<name>``            a plain timm ViT (ImageNet weights from the local Hugging Face cache,
                               else downloaded; ``pretrained=False``: random init; ``weights=``: a local file)
    ``bundled:<name>``         ``assets/models/<name>/model.safetensors`` + ``model.json``
    ``file:<path>.safetensors`` a model trained in the app, with its sidecar ``<path>.json``
    ``random:<name>``          a timm ViT architecture with random weights (same as
                               ``timm:<name>`` with ``pretrained=False``): an untrained model's attention

Sidecar JSON (``save_model`` writes it; ``FORMAT`` names the version)::

    {"format": "vit-explainer/1",
     "vit": ViTConfig.to_dict(),            # the architecture
     "class_names": ["circle", ...],        # one per output (empty when num_classes == 0)
     "data_config": {"input_size": [3, H, W], "interpolation": "bicubic", "mean": [...],
                     "std": [...], "crop_pct": 1.0, "crop_mode": "center"},   # timm's keys
     "description": "one or two sentences shown in the app",
     "meta": {...}}                         # free-form: dataset, epochs, accuracy, date...

Local files are safetensors only: a pickle can run code when it is loaded. A ``.pth``/``.bin``
given as ``weights=`` is read solely by ``torch.load(weights_only=True)``, which refuses code.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from vit_core.io import hub
from vit_core.io.hub import ModelUnavailable, is_online
from vit_core.model import ViTConfig, VisionTransformer, count_params
from vit_core.io.transforms import eval_transform

from vit_core import LAZY_IMPORTS

FORMAT = "vit-explainer/1"
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "assets" / "models"
SPEC_HELP = ("Accepted specs: 'timm:<name>' (a plain timm ViT, e.g. timm:vit_base_patch16_224.augreg2_in21k_ft_in1k), "
             "'bundled:<name>' (assets/models/<name>/) or 'file:<path>.safetensors' (with its .json sidecar).")
DATA_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
DATA_DEFAULTS = {"interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "center"}  # input_size/mean/std: required

CATALOG: list[tuple[str, str]] = [
    ("bundled:shapes-vit", "Shapes ViT (bundled, trained by this project; works offline)"),
    # Stage 1 of the bundled recipe, kept to show shortcut learning: with it picked, every page
    # shows how a model that reads the stripes attends (Critics and impact compares the two).
    ("bundled:shapes-vit-stage1", "Shapes ViT, stage 1: the stripe shortcut (bundled)"),
    ("timm:vit_tiny_patch16_224.augreg_in21k_ft_in1k", "ViT-Ti/16 · ImageNet (AugReg) · 23 MB"),
    ("timm:vit_small_patch16_224.augreg_in21k_ft_in1k", "ViT-S/16 · ImageNet (AugReg) · 88 MB"),
    ("timm:vit_base_patch16_224.augreg2_in21k_ft_in1k", "ViT-B/16 · ImageNet (AugReg2) · 346 MB"),
    ("timm:deit_small_patch16_224.fb_in1k", "DeiT-S/16 · ImageNet-1k only · 88 MB"),
    ("timm:vit_small_patch16_224.dino", "ViT-S/16 · DINO, self-supervised (features only) · 87 MB"),
    ("random:vit_base_patch16_224", "ViT-B/16 · untrained (random weights, offline)"),
    ("random:vit_tiny_patch16_224", "ViT-Ti/16 · untrained (random weights, offline)"),
]

_TRAINING = {
    "augreg_in21k_ft_in1k": "pre-trained on ImageNet-21k, fine-tuned on ImageNet-1k (AugReg, Steiner et al. 2021)",
    "augreg2_in21k_ft_in1k": "pre-trained on ImageNet-21k, fine-tuned on ImageNet-1k with extra augmentation (AugReg2)",
    "augreg_in1k": "trained on ImageNet-1k only (AugReg recipe)",
    "augreg_in21k": "trained on ImageNet-21k's 21,843 classes (AugReg)",
    "fb_in1k": "trained on ImageNet-1k only with DeiT's data-efficient recipe (Touvron et al. 2021)",
    "dino": "trained without labels by DINO self-distillation on ImageNet-1k (Caron et al. 2021); "
            "it has no classifier head, so it shows features and attention only",
}
# Architectures whose parity with timm tests/test_model.py checks (logits, blocks, attention maps).
PARITY_TESTED = {"vit_tiny_patch16_224", "vit_small_patch16_224", "vit_small_patch32_224", "vit_base_patch16_224",
                 "deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224"}
_SIZE_NAMES = {192: "Ti", 384: "S", 768: "B", 1024: "L", 1280: "H"}


@dataclass
class LoadedModel:
    model: VisionTransformer  # eval mode, parameters frozen
    data_config: dict[str, Any]  # timm's resolve_data_config keys (DATA_KEYS)
    transform: Callable  # PIL image -> normalised (3, H, W) tensor
    class_names: list[str]  # one per output; empty for a features-only model
    description: str
    spec: str
    source: str  # "bundled" | "pretrained" | "random" | "file"


@dataclass
class ModelStatus:
    state: str  # "bundled" | "cached" | "downloadable" | "unavailable" | "file"
    size_mb: float | None = None
    note: str = ""


def _parse(spec: str) -> tuple[str, str]:
    kind, sep, rest = str(spec).partition(":")
    if not sep or kind not in ("timm", "bundled", "file", "random") or not rest.strip():
        raise ValueError(f"Unknown model spec {spec!r}. {SPEC_HELP}")
    return kind, rest.strip()


def arch_label(cfg: ViTConfig, family: str = "ViT") -> str:
    return f"{family}-{_SIZE_NAMES.get(cfg.embed_dim, f'D{cfg.embed_dim}')}/{cfg.patch_size}"


def _from_timm(m: nn.Module, name: str) -> VisionTransformer:
    """VisionTransformer.from_timm without a second random init: built on meta, weights assigned."""
    try:
        cfg = VisionTransformer.config_from_timm(m.requires_grad_(False))
        with torch.device("meta"):
            ours = VisionTransformer(cfg)
        ours.load_state_dict(m.state_dict(), strict=True, assign=True)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"timm:{name} cannot be mirrored by this explainer's ViT: {str(err)[:300]}") from None
    bad = [k for k, v in ours.state_dict().items() if not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"The weights for timm:{name} hold NaN/inf values ({', '.join(bad[:3])}).")
    return ours


def _check_parity(m: nn.Module, ours: VisionTransformer, name: str) -> None:
    x = torch.randn(1, ours.cfg.in_chans, ours.cfg.img_size, ours.cfg.img_size,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = m.eval()(x), ours.eval()(x)
    if a.shape != b.shape or (a - b).abs().max() > 1e-3 * max(1.0, float(a.abs().max())):
        raise ValueError(f"timm:{name} computes something this explainer's ViT does not reproduce.")


def _finish(model: VisionTransformer, data_config: dict, class_names: list[str], description: str,
            spec: str, source: str) -> LoadedModel:
    model.eval().requires_grad_(False)
    merged = {**DATA_DEFAULTS, **data_config}
    dc = {k: tuple(merged[k]) if isinstance(merged[k], list) else merged[k] for k in DATA_KEYS if k in merged}
    missing = [k for k in DATA_KEYS if k not in dc]
    if missing:
        raise ValueError(f"data_config for {spec} lacks {missing}.")
    return LoadedModel(model=model, data_config=dc, transform=eval_transform(dc),
                       class_names=list(class_names), description=description, spec=spec, source=source)


def _load_timm(name: str, spec: str, weights, pretrained: bool, progress) -> LoadedModel:
    with LAZY_IMPORTS:
        from timm.data import resolve_data_config

    m, source, where = hub.build_timm(name, weights, pretrained, progress)
    ours = _from_timm(m, name)
    if name.split(".")[0] not in PARITY_TESTED:  # unverified variant: one forward pass each to be sure
        _check_parity(m, ours, name)
    tag = (m.pretrained_cfg or {}).get("tag") or ""
    family = "DeiT" if name.startswith("deit") else "ViT"
    trained = ("untrained" if source == "random"
               else _TRAINING.get(tag, f"timm weights '{tag}'" if tag else "timm weights"))
    if not m.num_classes and (tag != "dino" or source == "random"):
        trained += "; features only (no classifier head)"
    desc = (f"{arch_label(ours.cfg, family)} from timm ({count_params(ours) / 1e6:.1f}M parameters, "
            f"{ours.cfg.depth} blocks × {ours.cfg.num_heads} heads), {trained}. {where[0].upper()}{where[1:]}.")
    return _finish(ours, resolve_data_config({}, model=m), hub.imagenet_class_names(m), desc, spec, source)


def _local_paths(kind: str, rest: str) -> tuple[Path, Path]:
    if kind == "bundled":
        if not re.fullmatch(r"\w[\w.-]*", rest):
            raise ValueError(f"Bad bundled model name {rest!r}: a folder name under {BUNDLED_DIR}.")
        d = BUNDLED_DIR / rest
        return d / "model.safetensors", d / "model.json"
    p = Path(rest).expanduser()
    if p.is_dir():
        p = p / "model.safetensors"
    if p.suffix != ".safetensors":
        raise ValueError(f"Refused {p.name}: file: models must be .safetensors (pickled .pth/.pt/.bin/.ckpt "
                         f"checkpoints can run arbitrary code when loaded). {SPEC_HELP}")
    return p, p.with_suffix(".json")


def _load_local(kind: str, rest: str, spec: str) -> LoadedModel:
    from safetensors import safe_open
    from safetensors.torch import load_file

    st, js = _local_paths(kind, rest)
    if not st.is_file() or not js.is_file():
        hint = "build it with `make model`" if kind == "bundled" else "save it with vit_core.io.loading.save_model"
        raise ModelUnavailable(f"Model {spec} not found: needs {st} and its sidecar {js.name} ({hint}).")
    try:
        side = json.loads(js.read_text())
        if side.get("format") != FORMAT:
            raise ValueError(f"format is {side.get('format')!r}, expected {FORMAT!r}")
        cfg = ViTConfig.from_dict(side["vit"])
        class_names, data_config = list(side.get("class_names") or []), dict(side["data_config"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"Bad sidecar {js}: {err}") from None
    if cfg.num_classes and len(class_names) != cfg.num_classes:
        raise ValueError(f"{js.name} lists {len(class_names)} class names for {cfg.num_classes} outputs.")
    with torch.device("meta"):  # shapes only: a bad sidecar cannot make us allocate anything
        model = VisionTransformer(cfg)
    try:
        with safe_open(str(st), framework="pt") as f:
            have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:
        raise ValueError(f"{st.name} is not a valid safetensors file ({err}).") from None
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    bad = ([f"missing {k}" for k in want if k not in have] + [f"unexpected {k}" for k in have if k not in want]
           + [f"{k}: {have[k]} vs config {want[k]}" for k in want if k in have and have[k] != want[k]])
    if bad:
        raise ValueError(f"{st.name} does not match its config ({len(bad)} problems): {'; '.join(bad[:5])}.")
    model.load_state_dict({k: v.float() for k, v in load_file(st).items()}, strict=True, assign=True)
    desc = side.get("description") or f"{arch_label(cfg)} ({count_params(model) / 1e6:.1f}M parameters) from {st.name}."
    return _finish(model, data_config, class_names, desc, spec, "bundled" if kind == "bundled" else "file")


def load_model(spec: str, weights: str | os.PathLike | None = None, pretrained: bool = True,
               progress: Callable[[float, str], None] | None = None) -> LoadedModel:
    """Load ``spec`` (see the module docstring). Raises ModelUnavailable when it cannot be had
    right now (offline and not cached, bundled model not built), ValueError for bad specs or files."""
    kind, rest = _parse(spec)
    if kind == "random":
        return _load_timm(rest, spec, None, False, progress)
    if kind == "timm":
        return _load_timm(rest, spec, weights, pretrained, progress)
    if weights is not None:
        raise ValueError("weights= applies to timm: specs only.")
    return _load_local(kind, rest, spec)


def model_status(spec: str) -> ModelStatus:
    """Where ``spec``'s weights are, without loading them (fast; at most one ~0.8 s probe offline)."""
    kind, rest = _parse(spec)
    if kind == "random":
        return ModelStatus("random", None, "untrained: random weights, no download")
    if kind != "timm":
        st, js = _local_paths(kind, rest)
        if not (st.is_file() and js.is_file()):
            return ModelStatus("unavailable", None, f"{st} not found" + (": run `make model`" if kind == "bundled" else ""))
        try:
            note = json.loads(js.read_text()).get("description", "")
        except (ValueError, OSError, AttributeError):
            note = ""
        return ModelStatus(kind if kind == "bundled" else "file", st.stat().st_size / 1e6, note)
    return ModelStatus(*hub.timm_status(rest))


def save_model(path: str | os.PathLike, model: nn.Module, class_names: list[str], data_config: dict,
               meta: dict | None = None) -> Path:
    """Write weights + sidecar. ``x.safetensors`` (or ``x.json``) -> ``x.safetensors`` + ``x.json``;
    any other path is a directory -> ``<dir>/model.safetensors`` + ``<dir>/model.json`` (the bundled layout).
    Returns the .safetensors path (load it with ``load_model("file:<that path>")``)."""
    from safetensors.torch import save_file

    p, meta = Path(path), dict(meta or {})
    if not isinstance(model, VisionTransformer):
        model = VisionTransformer.from_timm(model)
    st = p.with_suffix(".safetensors") if p.suffix in (".safetensors", ".json") else p / "model.safetensors"
    st.parent.mkdir(parents=True, exist_ok=True)
    n = model.cfg.num_classes
    if n and len(class_names) != n:
        raise ValueError(f"{len(class_names)} class names for {n} outputs.")
    dc = {k: list(v) if isinstance(v, tuple) else v for k, v in {**DATA_DEFAULTS, **data_config}.items()
          if k in DATA_KEYS}
    dataset = meta.get("dataset") or (meta.get("train_config") or {}).get("dataset")
    acc = meta.get("val_acc")
    desc = meta.pop("description", None) or (
        f"{arch_label(model.cfg)} ({count_params(model) / 1e6:.2f}M parameters) trained from scratch in the "
        f"ViT Explainer" + (f" on {dataset}" if dataset else "")
        + (f" ({acc:.0%} validation accuracy)" if isinstance(acc, (int, float)) else "") + ".")
    side = {"format": FORMAT, "vit": model.cfg.to_dict(), "class_names": list(class_names),
            "data_config": dc, "description": desc, "meta": meta}
    text = json.dumps(side, indent=2)  # fails before anything is written if meta is not JSON
    # A writer-unique temp name: replicas of a cluster save into one shared folder.
    tmp = st.with_name(f"{st.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp),
              metadata={"format": "pt", "vit-explainer": FORMAT})
    os.replace(tmp, st)
    tmp.write_text(text)
    os.replace(tmp, st.with_suffix(".json"))  # the sidecar last: list_user_models needs both
    return st


def class_name(class_names, i: int) -> str:
    """Class ``i``'s name, or "class i" where a model carries fewer names than outputs."""
    return class_names[i] if i < len(class_names) else f"class {i}"


def device_label(device: str | torch.device = "auto") -> str:
    """Where inference (or training) runs, in words: "GPU (name)" or "CPU (n threads)"."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    if dev.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(dev)})"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'' if n == 1 else 's'})"


def list_user_models(folder: str | os.PathLike) -> list[Path]:
    """Saved models under ``folder``: ``*.safetensors`` with a sidecar, and ``*/model.safetensors`` dirs."""
    d = Path(folder)
    if not d.is_dir():
        return []
    found = sorted(d.glob("*.safetensors")) + sorted(d.glob("*/model.safetensors"))
    return [p for p in found if p.with_suffix(".json").is_file()]


__all__ = ["CATALOG", "FORMAT", "LoadedModel", "ModelStatus", "ModelUnavailable", "is_online",
           "list_user_models", "load_model", "model_status", "save_model"]
