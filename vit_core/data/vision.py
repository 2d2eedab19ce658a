"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision, cached in a local data folder.

The first use downloads the files (a few tens of MB) with a progress callback; later uses read
the cache and never touch the network. Offline, :func:`load` says so within about a second: a
bounded TCP probe of the download host runs first, instead of waiting for urllib's timeouts.

Images come back as uint8 (n, 3, H, W) RGB at the dataset's own size (grey digits are repeated
over three channels, so a model trained on them can be explained like any other);
:func:`data_source` resizes per batch to the training size and gives the training loop a
``vit_core.data.source.DataSource``.
"""
from __future__ import annotations

import functools
import os
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
import torch.nn.functional as F

from vit_core import LAZY_IMPORTS

Progress = Callable[[float, str], None]

CHUNK = 1 << 16


@dataclass(frozen=True)
class Spec:
    title: str
    folder: str  # torchvision's class name, which is also its folder under the data root
    urls: tuple[str, ...]  # files, downloaded in order (mirrors are tried per file)
    mirrors: tuple[str, ...]
    size_mb: float
    classes: tuple[str, ...]
    train_images: int = 50_000  # the training split's size (the test split is 10,000 for all three)


DATASETS: dict[str, Spec] = {
    "mnist": Spec(
        "MNIST (handwritten digits)", "MNIST",
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        11.6, tuple(str(i) for i in range(10)), 60_000),
    "fashion-mnist": Spec(
        "Fashion-MNIST (clothes)", "FashionMNIST",
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        30.9, ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"), 60_000),
    "cifar10": Spec(
        "CIFAR-10 (small photos)", "CIFAR10", ("cifar-10-python.tar.gz",),
        ("https://www.cs.toronto.edu/~kriz/",), 170.5,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
}


class DatasetUnavailable(RuntimeError):
    """Not cached and cannot be downloaded now; the message is meant for the person."""


@dataclass
class VisionData:
    train_images: torch.Tensor  # (n, 3, H, W) uint8
    train_labels: torch.Tensor  # (n,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]


def data_root() -> Path:
    """``$VIT_DATA_DIR``, else ``~/.cache/vit-explainer/data`` (read at call time)."""
    env = os.environ.get("VIT_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vit-explainer" / "data"


def _tv_class(name: str):
    with LAZY_IMPORTS:
        from torchvision import datasets

    return getattr(datasets, DATASETS[name].folder)


def is_cached(name: str, root: Path | None = None) -> bool:
    """Are the files on disk (and intact, as torchvision checks them)? Never touches the network."""
    root = Path(root or data_root())
    try:
        ds = _tv_class(name).__new__(_tv_class(name))
        ds.root = str(root)
        if name == "cifar10":
            return ds._check_integrity()
        return ds._check_exists()
    except Exception:
        return False


def _offline_env() -> bool:
    return any((os.environ.get(v) or "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for v in ("VIT_OFFLINE", "HF_HUB_OFFLINE"))


def host_reachable(url: str, timeout: float = 1.0) -> bool:
    """A TCP connect to the URL's host, DNS included, bounded by ``timeout`` seconds."""
    if _offline_env():
        return False
    u = urlparse(url)
    host, port = u.hostname or "", u.port or (80 if u.scheme == "http" else 443)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    # A thread, because getaddrinfo ignores socket timeouts and can hang for seconds without DNS.
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _fetch(url: str, dest: Path, progress: Progress | None, done_mb: float, total_mb: float) -> float:
    """Stream ``url`` into ``dest`` (via a .part file); returns the MB received."""
    tmp = dest.with_name(dest.name + ".part")
    got = 0
    with urllib.request.urlopen(url, timeout=20) as r, open(tmp, "wb") as f:
        while True:
            chunk = r.read(CHUNK)
            if not chunk:
                break
            f.write(chunk)
            got += len(chunk)
            if progress is not None:
                mb = done_mb + got / 1e6
                progress(min(mb / total_mb, 0.99), f"Downloading {dest.name}: {mb:.1f} / {total_mb:.0f} MB")
    os.replace(tmp, dest)
    return got / 1e6


def download(name: str, root: Path | None = None, progress: Progress | None = None) -> Path:
    """Download and unpack ``name`` under ``root`` where torchvision expects it."""
    with LAZY_IMPORTS:
        from torchvision.datasets.utils import check_integrity, extract_archive

    spec = DATASETS[name]
    root = Path(root or data_root())
    if is_cached(name, root):
        return root
    if not host_reachable(spec.mirrors[0]) and not any(host_reachable(m) for m in spec.mirrors[1:]):
        raise DatasetUnavailable(offline_message(name, root))
    tv = _tv_class(name)
    md5 = dict(tv.resources) if name != "cifar10" else {tv.filename: tv.tgz_md5}
    folder = root / spec.folder / "raw" if name != "cifar10" else root
    folder.mkdir(parents=True, exist_ok=True)
    done = 0.0
    for fname in spec.urls:
        dest = folder / fname
        errors = []
        for mirror in spec.mirrors:
            try:
                if not check_integrity(str(dest), md5.get(fname)):
                    done += _fetch(mirror + fname, dest, progress, done, spec.size_mb)
                if not check_integrity(str(dest), md5.get(fname)):
                    raise RuntimeError("checksum mismatch")
                break
            except Exception as err:  # try the next mirror
                errors.append(f"{mirror}: {err}")
        else:
            raise DatasetUnavailable(f"Could not download {spec.title} ({fname}): " + "; ".join(errors))
        if progress is not None:
            progress(min(done / spec.size_mb, 0.99), f"Unpacking {fname}…")
        extract_archive(str(dest), str(folder))
    if progress is not None:
        progress(1.0, f"{spec.title} is ready")
    return root


def offline_message(name: str, root: Path | None = None) -> str:
    spec = DATASETS[name]
    return (f"{spec.title} is not on this machine ({root or data_root()}) and this machine is offline, so it cannot "
            f"be downloaded now ({spec.size_mb:.0f} MB). Use Shapes or your own zip of images, or download "
            f"it once where there is a network: `python -m vit_core.data.vision {name}` "
            f"(set VIT_DATA_DIR to choose the folder).")


@functools.lru_cache(maxsize=3)
def _load_cached(name: str, root: str) -> VisionData:
    tv = _tv_class(name)
    out = []
    for train in (True, False):
        ds = tv(root, train=train, download=False)
        x = torch.as_tensor(ds.data)
        x = x[:, None].expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (n, 3, H, W)
        out += [x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64)]
    return VisionData(*out, classes=list(DATASETS[name].classes))


def load(name: str, root: Path | None = None, progress: Progress | None = None,
         allow_download: bool = True) -> VisionData:
    """The whole dataset as uint8 tensors; downloads first if needed (and allowed and online).

    Raises:
        DatasetUnavailable: not cached and offline (decided within about a second), or the
            download failed. The message says what to do.
    """
    if name not in DATASETS:
        raise KeyError(f"Unknown dataset {name!r}; choose from {sorted(DATASETS)}.")
    root = Path(root or data_root())
    if not is_cached(name, root):
        if not allow_download:
            raise DatasetUnavailable(offline_message(name, root))
        download(name, root, progress)
    return _load_cached(name, str(root))


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, h, w) uint8 -> (B, 3, size, size) uint8 (bilinear, antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                      antialias=size < images.shape[-1])
    return x.round_().clamp_(0, 255).to(torch.uint8)


def subset(images: torch.Tensor, labels: torch.Tensor, n: int | None, seed: int):
    """A seeded random ``n`` of the images (all of them when n is None or too large)."""
    if n is None or n >= len(labels):
        return images, labels
    idx = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n]
    return images[idx], labels[idx]


def tensor_source(cfg, train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
                  val_labels: torch.Tensor, classes: list[str]):
    """A ``vit_core.data.source.DataSource`` over in-memory uint8 tensors of any size.

    Uses ``cfg.train_size`` (a seeded subset, for the data-size experiment), ``cfg.val_size``
    and ``cfg.img_size`` (batches are resized on the fly, so the stored tensors stay small).
    """
    from vit_core.data.source import DataSource, fixed_set_sampler

    tx, ty = subset(train_images, train_labels, cfg.train_size, cfg.seed)
    vx, vy = subset(val_images, val_labels, cfg.val_size, cfg.val_seed)
    sample = fixed_set_sampler(tx, ty, min(cfg.batch_size, len(ty)), cfg.seed)

    def batch(step: int):
        x, y = sample(step)
        return resize_uint8(x, cfg.img_size), y

    return DataSource(batch, resize_uint8(vx, cfg.img_size), vy, list(classes), len(ty))


def data_source(cfg, name: str | None = None, progress: Progress | None = None):
    """DataSource for ``cfg.dataset`` (or ``name``): train split to train, test split to validate."""
    d = load(name or cfg.dataset, progress=progress)
    return tensor_source(cfg, d.train_images, d.train_labels, d.test_images, d.test_labels, d.classes)


def main(argv: list[str] | None = None) -> int:
    import sys

    names = (argv if argv is not None else sys.argv[1:]) or list(DATASETS)
    last = [0.0]

    def show(frac: float, msg: str) -> None:
        if time.monotonic() - last[0] > 0.5 or frac >= 1:
            last[0] = time.monotonic()
            print(f"\r{msg:70s}", end="", flush=True)

    for name in names:
        try:
            download(name, progress=show)
            print(f"\n{name}: cached in {data_root()}")
        except DatasetUnavailable as err:
            print(f"\n{err}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["DATASETS", "DatasetUnavailable", "VisionData", "data_root", "data_source", "download",
           "is_cached", "load", "resize_uint8", "tensor_source"]
