"""Where timm ViT weights come from, seen from a lecture hall: name checks, the local Hugging Face
cache first, a fast offline check, downloads, and timm's own loading of a weights file.

Everything is read from the environment at call time (not at import), so ``HF_HOME``,
``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` can change while the app runs (and in tests).
No function here ever waits on the network for more than about a second unless it downloads.
"""
from __future__ import annotations

import functools
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
import torch.nn as nn
from tqdm.std import tqdm as _tqdm

from vit_core import LAZY_IMPORTS

Progress = Callable[[float, str], None]

DEFAULT_ENDPOINT = "https://huggingface.co"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub loader looks for, in order
ONLINE_TTL_S = 30.0
EXAMPLES = ("vit_base_patch16_224.augreg2_in21k_ft_in1k, vit_tiny_patch16_224.augreg_in21k_ft_in1k, "
            "deit_small_patch16_224.fb_in1k, vit_small_patch16_224.dino")

# Download sizes (MB, fp32 safetensors) of the catalog's weights, for when the hub cannot be asked.
KNOWN_SIZES_MB = {
    "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k": 22.9,
    "timm/vit_small_patch16_224.augreg_in21k_ft_in1k": 88.2,
    "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k": 346.3,
    "timm/deit_small_patch16_224.fb_in1k": 88.2,
    "timm/vit_small_patch16_224.dino": 86.7,
}

_online: dict[tuple[str, int], tuple[float, bool]] = {}  # (host, port) -> (checked at, reachable)
_sizes: dict[str, float] = {}  # repo id -> MB, as reported by the hub


class ModelUnavailable(RuntimeError):
    """The weights are neither bundled nor cached, and cannot be downloaded right now."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline_env() -> bool:
    """``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``): never touch the network."""
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    """The hub cache, resolved as huggingface_hub does, but now rather than at import time."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def cached_file(repo_id: str, filenames: tuple[str, ...] = WEIGHT_FILES) -> Path | None:
    """Path of the first of ``filenames`` present in the local cache (no network), else None."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir())
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


def catalog_cached(name: str) -> bool | None:
    """Whether a catalog model's weights (a KNOWN_SIZES_MB repo) are in the local cache, by a file
    check alone: no timm import (~1.7 s), so the app can pick its default model at start-up.
    None for names outside the catalog (ask ``timm_status``)."""
    repo = f"timm/{name}"
    return None if repo not in KNOWN_SIZES_MB else cached_file(repo) is not None


def _probe(host: str, port: int, result: list[bool]) -> None:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            result.append(True)
    except Exception:  # refused, unreachable, no DNS: all "offline"
        result.append(False)


def is_online(timeout: float = 0.8) -> bool:
    """Can the hub's host be reached? A TCP connect bounded by ``timeout`` (DNS included).

    Cached for ``ONLINE_TTL_S`` seconds per host. ``HF_HUB_OFFLINE=1`` answers False at once.
    """
    if offline_env():
        return False
    url = urlparse(endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    now = time.monotonic()
    hit = _online.get((host, port))
    if hit and now - hit[0] < ONLINE_TTL_S:
        return hit[1]
    result: list[bool] = []
    # A thread, because getaddrinfo ignores socket timeouts and can hang for seconds without DNS.
    worker = threading.Thread(target=_probe, args=(host, port, result), daemon=True)
    worker.start()
    worker.join(timeout)
    ok = bool(result and result[0])
    _online[(host, port)] = (time.monotonic(), ok)
    return ok


def clear_online_cache() -> None:
    _online.clear()


def remote_size_mb(repo_id: str, filename: str = WEIGHT_FILES[0]) -> float | None:
    """Download size from the hub's metadata when online (cached), else from KNOWN_SIZES_MB."""
    if repo_id in _sizes:
        return _sizes[repo_id]
    if is_online():
        try:
            from huggingface_hub import get_hf_file_metadata, hf_hub_url

            meta = get_hf_file_metadata(hf_hub_url(repo_id, filename, endpoint=endpoint()),
                                        timeout=1.5, endpoint=endpoint())
            if meta.size:
                _sizes[repo_id] = meta.size / 1e6
                return _sizes[repo_id]
        except Exception:  # a size is a nicety; never fail a status query over it
            pass
    return KNOWN_SIZES_MB.get(repo_id)


def _report(progress: Progress | None, fraction: float, message: str) -> None:
    """Best effort: a failing progress callback (e.g. a UI called from a worker thread) never stops a download."""
    if progress is not None:
        try:
            progress(fraction, message)
        except Exception:
            pass


def _progress_bar(progress: Progress | None, label: str) -> type[_tqdm]:
    """A silent tqdm class that forwards byte counts to ``progress(fraction, message)``, once per percent."""

    class Bar(_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = True
            self._done, self._pct = float(kwargs.get("initial") or 0), -1
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            self._done += n or 0
            total = self.total or 0
            pct = int(100 * min(self._done / total, 1.0)) if total else -1
            if pct > self._pct:
                self._pct = pct
                _report(progress, pct / 100, f"Downloading {label}: {self._done / 1e6:.0f} / {total / 1e6:.0f} MB")

    return Bar


def download(repo_id: str, progress: Progress | None = None,
             filenames: tuple[str, ...] = WEIGHT_FILES) -> Path:
    """Fetch the weights into the hub cache (resumable; reused by every later load)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    last: Exception | None = None
    for name in filenames:
        try:
            _report(progress, 0.0, f"Downloading {repo_id}/{name}…")
            path = hf_hub_download(repo_id, name, cache_dir=cache_dir(), endpoint=endpoint(),
                                   tqdm_class=_progress_bar(progress, repo_id))
            _report(progress, 1.0, f"Downloaded {repo_id}")
            return Path(path)
        except EntryNotFoundError as err:
            last = err
        except Exception as err:  # network, auth, disk: all mean "not now"
            raise ModelUnavailable(f"Downloading {repo_id} failed ({type(err).__name__}: {err}).") from err
    raise ModelUnavailable(f"{repo_id} has none of {', '.join(filenames)} on the hub ({last}).")


def fix_hint(name: str) -> str:
    return (f"Connect and click Download, or prefetch before the lecture with "
            f"`python -m vit_core.io.prefetch timm:{name}`.")


def check_supported(m: nn.Module, name: str) -> None:
    """Refuse timm models whose computation our VisionTransformer does not mirror exactly."""
    with LAZY_IMPORTS:
        from timm.layers import Attention, Mlp
    with LAZY_IMPORTS:
        from timm.models.vision_transformer import Block, VisionTransformer as TimmViT

    problems = [f"it is a {type(m).__name__}"] if type(m) is not TimmViT else []
    if not problems:
        b, ident = m.blocks[0], nn.Identity()
        problems = [p for p, bad in [
            (f"global_pool={m.global_pool!r}", m.global_pool not in ("token", "avg")),
            ("attention pooling", getattr(m, "attn_pool", None) is not None),
            ("a normalised patch embedding", not isinstance(m.patch_embed.norm, nn.Identity)),
            (f"{type(b).__name__}/{type(b.attn).__name__}/{type(b.mlp).__name__} blocks",
             (type(b), type(b.attn), type(b.mlp)) != (Block, Attention, Mlp)),
            ("a non-GELU activation", type(getattr(b.mlp, "act", None)) is not nn.GELU or b.mlp.act.approximate != "none"),
            ("non-LayerNorm norms", not isinstance(b.norm1, nn.LayerNorm)),
            ("extra norms in attention/MLP", not all(isinstance(getattr(x, "norm", ident), nn.Identity) for x in (b.attn, b.mlp))),
            ("bias-free layers", any(getattr(x, "bias", 0) is None for x in (m.patch_embed.proj, b.attn.proj, b.mlp.fc1))),
        ] if bad]
    if problems:
        raise ValueError(f"timm:{name} is not a plain ViT this explainer mirrors ({'; '.join(problems)}). "
                         f"Try one of: {EXAMPLES}.")


@functools.lru_cache(maxsize=64)
def timm_cfg(name: str):
    """Validate a timm name (architecture and tag) with no weights and no network; its pretrained cfg."""
    with LAZY_IMPORTS:
        import timm
        from timm.models import get_pretrained_cfg, is_model_in_modules, list_pretrained, split_model_name_tag

    if not timm.is_model(name):
        raise ValueError(f"Unknown timm model {name!r}. Plain timm ViTs work, e.g. {EXAMPLES}.")
    arch, _ = split_model_name_tag(name)
    if not is_model_in_modules(arch, ["vision_transformer", "deit"]):
        raise ValueError(f"timm:{name} is not a Vision Transformer; this explainer loads plain timm ViTs "
                         f"(vit_* and deit_* models), e.g. {EXAMPLES}.")
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as err:
        raise ValueError(f"{err} Available: {', '.join(list_pretrained(f'{arch}.*')) or 'none'}.") from None
    with torch.device("meta"):  # the structure only: no memory, no init cost
        check_supported(timm.create_model(name), name)
    return cfg


def weight_files(cfg) -> tuple[str, ...]:
    return (cfg.hf_hub_filename,) if cfg.hf_hub_filename else WEIGHT_FILES


def refuse_unsafe(path: Path) -> None:
    """A non-safetensors state dict is opened only by torch.load(weights_only=True), which refuses code."""
    if path.suffix not in (".pth", ".pt", ".bin"):
        raise ValueError(f"{path.name}: weights must be .safetensors, or a .pth/.pt/.bin state dict.")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"Refused {path.name}: torch.load(weights_only=True) rejected it, so it holds more than "
                         f"tensors and could run code ({type(err).__name__}). Use a plain state dict, ideally "
                         f"saved as .safetensors.") from None


def create_timm(name: str, path: Path | None) -> nn.Module:
    """timm's model with random init (path None) or the weights in ``path``, through timm's own
    pretrained-file loading (so its checkpoint filters run); never the network."""
    with LAZY_IMPORTS:
        import timm

    if path is None:
        return timm.create_model(name, pretrained=False)
    try:
        return timm.create_model(name, pretrained=True, weight_init="skip",  # no init: the file overwrites it
                                 pretrained_cfg_overlay=dict(file=str(path), custom_load=False))
    except (RuntimeError, KeyError, ValueError) as err:
        msg = " ".join(str(err).strip().splitlines()[:3])[:600]
        raise ValueError(f"The weights in {path.name} do not fit timm:{name}: {msg}") from None


def build_timm(name: str, weights=None, pretrained: bool = True,
               progress: Progress | None = None) -> tuple[nn.Module, str, str]:
    """(timm model, source, where its weights came from). Cache first; offline -> ModelUnavailable fast."""
    cfg = timm_cfg(name)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No weights file at {path}.")
        if path.suffix != ".safetensors":
            refuse_unsafe(path)
        return create_timm(name, path), "file", f"weights from the local file {path.name}"
    if not pretrained:
        return create_timm(name, None), "random", "random initialisation (timm's init), for comparison"
    repo = cfg.hf_hub_id if cfg else None
    if not repo:
        raise ModelUnavailable(f"timm has no downloadable weights for {name}.")
    path = cached_file(repo, weight_files(cfg))
    where = f"weights from the local Hugging Face cache ({repo})"
    if path is None:
        if offline_env() or not is_online():
            raise ModelUnavailable(f"timm:{name} is not in the local Hugging Face cache ({cache_dir()}) "
                                   f"and the hub is unreachable (offline). {fix_hint(name)}")
        path = download(repo, progress, weight_files(cfg))
        where = f"weights downloaded from the Hugging Face hub ({repo})"
    return create_timm(name, path), "pretrained", where


def timm_status(name: str) -> tuple[str, float | None, str]:
    """(state, size in MB, note) for a timm model's weights, without loading them."""
    cfg = timm_cfg(name)
    repo = cfg.hf_hub_id if cfg else None
    if not repo:
        return "unavailable", None, "timm has no downloadable weights for this tag"
    path = cached_file(repo, weight_files(cfg))
    if path is not None:
        return "cached", path.stat().st_size / 1e6, "in the local Hugging Face cache"
    if offline_env() or not is_online():
        return ("unavailable", KNOWN_SIZES_MB.get(repo), "offline and not cached. Prefetch before the lecture: "
                f"`python -m vit_core.io.prefetch timm:{name}`")
    return "downloadable", remote_size_mb(repo, weight_files(cfg)[0]), f"from {endpoint()}/{repo}"


def imagenet_class_names(m: nn.Module) -> list[str]:
    """Readable class names ("golden retriever") from timm's ImageNetInfo; [] when headless."""
    with LAZY_IMPORTS:
        from timm.data import ImageNetInfo, infer_imagenet_subset

    n = m.num_classes
    if not n:
        return []
    subset = infer_imagenet_subset(m)
    if subset:
        info = ImageNetInfo(subset)
        if info.num_classes() == n:
            return [info.index_to_description(i) for i in range(n)]
    names = (getattr(m, "pretrained_cfg", None) or {}).get("label_names")
    return list(names) if names and len(names) == n else [f"class {i}" for i in range(n)]


__all__ = ["ModelUnavailable", "KNOWN_SIZES_MB", "build_timm", "cache_dir", "cached_file", "clear_online_cache",
           "download", "endpoint", "imagenet_class_names", "is_online", "offline_env", "remote_size_mb",
           "timm_cfg", "timm_status"]
