"""Your own images: a zip of class folders, checked and decoded in memory.

Layout::

    my-data.zip
        cats/  a.jpg  b.png ...
        dogs/  c.jpg ...

(one wrapping folder, ``my-data/cats/...``, is fine too). Each top-level folder is a class.

Nothing is ever extracted to disk, so a member name cannot write anywhere; names that try to
leave the archive (``../x``, ``/etc/x``, ``C:\\x``) still make the whole archive refused, since such
a zip was not made by zipping a folder. Zip bombs are defused by reading every member through a
capped read (the sizes a header declares are checked too, but never trusted), by a total budget
of uncompressed bytes, and by a cap on the number of entries. Every image is decoded by
:func:`vit_core.io.images.load_image` (format sniffing, pixel-count limits) and then resized, so
an unreadable file is skipped and listed with the reason rather than failing the upload.
"""
from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps

from vit_core.io import images

MAX_ZIP_BYTES = 200 * 1024 * 1024  # the upload itself
MAX_ENTRIES = 20_000  # entries in the central directory, folders included
MAX_IMAGES = 5_000  # images kept (the rest are listed as skipped)
MAX_MEMBER_BYTES = 20 * 1024 * 1024  # one uncompressed member
MAX_TOTAL_BYTES = 1024 * 1024 * 1024  # all uncompressed members together
MAX_RATIO = 200  # uncompressed / compressed above this (and over 1 MB) is a bomb, not a photo
MAX_CLASSES = 100
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

LIMITS_HELP = (
    f"A zip of up to {MAX_ZIP_BYTES // 2**20} MB with one folder per class (2 to {MAX_CLASSES} classes), "
    f"up to {MAX_IMAGES:,} images of at most {MAX_MEMBER_BYTES // 2**20} MB each "
    "(JPEG, PNG, WebP, BMP, TIFF or GIF)."
)


class ZipDataError(ValueError):
    """The archive cannot be used at all; the message is meant for the person."""


@dataclass
class ZipImages:
    """Decoded images from a zip, all the same size.

    Attributes:
        images: (n, 3, size, size) uint8 RGB.
        labels: (n,) int64 indices into ``classes``.
        classes: class (folder) names, sorted.
        skipped: (member name, reason) for every file that was not used.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(self.labels.tolist())
        return {name: c.get(i, 0) for i, name in enumerate(self.classes)}

    def split(self, val_fraction: float = 0.2, seed: int = 0) -> tuple["ZipImages", "ZipImages"]:
        """Stratified train/validation split: each class keeps at least one training image
        and gives at least one validation image when it has two or more."""
        g = torch.Generator().manual_seed(seed)
        train_idx, val_idx = [], []
        for c in range(len(self.classes)):
            idx = (self.labels == c).nonzero().flatten()
            idx = idx[torch.randperm(idx.numel(), generator=g)]
            n_val = 0 if idx.numel() < 2 else min(idx.numel() - 1, max(1, round(idx.numel() * val_fraction)))
            val_idx.append(idx[:n_val])
            train_idx.append(idx[n_val:])
        tr, va = torch.cat(train_idx), torch.cat(val_idx)
        pick = lambda i: ZipImages(self.images[i], self.labels[i], self.classes, [])  # noqa: E731
        return pick(tr), pick(va)


def _unsafe(name: str) -> bool:
    """Would this member name point outside the folder it is extracted into?"""
    if "\x00" in name or name.startswith(("/", "\\")) or "\\" in name:
        return True
    if len(name) >= 2 and name[1] == ":":  # C:..., a Windows drive
        return True
    parts = name.split("/")
    return any(p == ".." for p in parts)


def _ignored(name: str) -> bool:
    """Metadata that archivers add (macOS resource forks, Finder and Explorer files)."""
    parts = name.split("/")
    base = parts[-1]
    return (parts[0] == "__MACOSX" or base.startswith(".") or base.lower() in ("thumbs.db", "desktop.ini")
            or any(p.startswith(".") for p in parts[:-1]))


def _square(im: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` and centre-crop: (size, size, 3) uint8."""
    return np.asarray(ImageOps.fit(im, (size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes | None:
    """The member's bytes, or None if it inflates past ``cap`` (whatever its header said)."""
    with zf.open(info) as f:
        data = f.read(cap + 1)
    return None if len(data) > cap else data


def load_zip(data: bytes, size: int = 64, max_images: int = MAX_IMAGES,
             max_member_bytes: int = MAX_MEMBER_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
             progress=None) -> ZipImages:
    """Read a zip of class folders into one tensor of ``size`` x ``size`` RGB images.

    Args:
        data: the zip file's bytes.
        size: side of the square images returned (shorter side resized, centre crop).
        progress: optional ``callback(fraction, message)`` while decoding.

    Returns:
        ZipImages with the usable images; ``skipped`` lists every other file and why.

    Raises:
        ZipDataError: not a zip, unsafe names, too many entries or bytes, or fewer than two
            classes with usable images. The message says what to fix.
    """
    if len(data) > MAX_ZIP_BYTES:
        raise ZipDataError(f"The zip is {len(data) / 2**20:.0f} MB, over the limit. {LIMITS_HELP}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise ZipDataError(f"This is not a readable zip file ({err}). {LIMITS_HELP}") from err
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ZipDataError(f"The zip has {len(infos):,} entries, over the {MAX_ENTRIES:,} limit.")
        bad = [i.filename for i in infos if _unsafe(i.filename)]
        if bad:
            raise ZipDataError(
                "The zip was refused: some names point outside the archive's folder (for example "
                f"{bad[0]!r}). Make the zip by compressing a folder of class folders.")
        files = [i for i in infos if not i.is_dir() and not _ignored(i.filename)]
        # Strip one wrapping folder when every file sits inside the same one.
        tops = {posixpath.normpath(i.filename).split("/")[0] for i in files}
        strip = len(tops) == 1 and all(posixpath.normpath(i.filename).count("/") >= 2 for i in files)

        skipped: list[tuple[str, str]] = []
        candidates: list[tuple[zipfile.ZipInfo, str]] = []
        for info in files:
            parts = posixpath.normpath(info.filename).split("/")[1 if strip else 0:]
            if len(parts) < 2:
                skipped.append((info.filename, "not inside a class folder"))
            elif not info.filename.lower().endswith(IMAGE_EXTS):
                skipped.append((info.filename, "not an image file (by its extension)"))
            elif info.flag_bits & 0x1:
                skipped.append((info.filename, "encrypted"))
            elif info.file_size > max_member_bytes:
                skipped.append((info.filename, f"refused: {info.file_size / 2**20:.1f} MB uncompressed, "
                                               f"over the {max_member_bytes / 2**20:.0f} MB limit per file"))
            elif info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                skipped.append((info.filename, "refused: compressed suspiciously well (a zip bomb?)"))
            else:
                candidates.append((info, parts[0]))

        classes = sorted({c for _, c in candidates})
        if len(classes) > MAX_CLASSES:
            raise ZipDataError(f"The zip has {len(classes)} class folders, over the limit of {MAX_CLASSES}.")
        index = {c: i for i, c in enumerate(classes)}
        pics: list[np.ndarray] = []
        labels: list[int] = []
        total = 0
        for n, (info, cls) in enumerate(candidates):
            if len(pics) >= max_images:
                skipped.append((info.filename, f"over the limit of {max_images:,} images"))
                continue
            try:
                raw = _read_capped(zf, info, max_member_bytes)
            except (zipfile.BadZipFile, zlib.error, OSError, NotImplementedError, RuntimeError, EOFError) as err:
                skipped.append((info.filename, f"damaged inside the zip ({err})"))
                continue
            if raw is None:
                skipped.append((info.filename, "refused: inflates past its declared size (a zip bomb?)"))
                continue
            total += len(raw)
            if total > max_total_bytes:
                raise ZipDataError(f"The zip inflates to over {max_total_bytes / 2**30:.1f} GB of files. "
                                   + LIMITS_HELP)
            try:
                pics.append(_square(images.load_image(raw), size))
                labels.append(index[cls])
            except images.ImageError as err:
                skipped.append((info.filename, str(err).split(" Accepted:")[0]))
            if progress is not None and (n % 25 == 0 or n == len(candidates) - 1):
                progress((n + 1) / len(candidates), f"Decoded {n + 1} / {len(candidates)} files")

    found = sorted({classes[i] for i in labels})
    if len(found) < 2:
        what = f"only one class folder with usable images ({found[0]!r})" if found else "no usable images"
        raise ZipDataError(
            f"A classifier needs at least 2 classes, and this zip has {what}. Put the images in one "
            f"folder per class, e.g. cats/... and dogs/..., then zip the folders. {LIMITS_HELP}")
    if len(found) < len(classes):  # a class whose every file was unreadable: drop it
        keep = {classes.index(c): i for i, c in enumerate(found)}
        labels = [keep[i] for i in labels]
        classes = found
    imgs = torch.from_numpy(np.stack(pics)).permute(0, 3, 1, 2).contiguous()
    return ZipImages(imgs, torch.tensor(labels, dtype=torch.int64), classes, skipped)


__all__ = ["LIMITS_HELP", "ZipDataError", "ZipImages", "load_zip"]
