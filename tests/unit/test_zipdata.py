"""Uploaded zips of class folders, and the torchvision datasets (offline and from local files)."""
from __future__ import annotations

import io
import struct
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from vit_core.data import vision
from vit_core.data.zipdata import ZipDataError, load_zip


def png(color, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_two_classes_with_a_corrupt_image_and_a_non_image():
    data = make_zip({
        "pets/cats/a.png": png((255, 0, 0)),
        "pets/cats/b.png": png((250, 10, 0)),
        "pets/dogs/c.png": png((0, 0, 255)),
        "pets/dogs/broken.jpg": b"\xff\xd8\xff\xe0 truncated",
        "pets/dogs/notes.txt": b"hello",
        "pets/.DS_Store": b"junk",
        "__MACOSX/pets/cats/._a.png": b"junk",
    })
    d = load_zip(data, size=32)
    assert d.classes == ["cats", "dogs"]
    assert d.images.shape == (3, 3, 32, 32) and d.images.dtype == torch.uint8
    assert d.counts == {"cats": 2, "dogs": 1}
    assert int(d.images[d.labels == 1][0, 2].float().mean()) > 200  # the dog is blue
    skipped = dict(d.skipped)
    assert set(skipped) == {"pets/dogs/broken.jpg", "pets/dogs/notes.txt"}
    assert "damaged" in skipped["pets/dogs/broken.jpg"] and "not an image" in skipped["pets/dogs/notes.txt"]
    train, val = d.split(0.5, seed=0)
    assert len(train.labels) + len(val.labels) == 3 and set(train.labels.tolist()) == {0, 1}


def test_fewer_than_two_classes_is_refused_clearly():
    with pytest.raises(ZipDataError, match="at least 2 classes"):
        load_zip(make_zip({"cats/a.png": png((1, 2, 3)), "cats/b.png": png((3, 2, 1))}))
    with pytest.raises(ZipDataError, match="at least 2 classes"):  # the 2nd class has no usable image
        load_zip(make_zip({"cats/a.png": png((1, 2, 3)), "dogs/b.png": b"not an image"}))
    with pytest.raises(ZipDataError, match="not a readable zip"):
        load_zip(b"PK\x03\x04 nonsense")


@pytest.mark.parametrize("name", ["../evil/x.png", "/etc/x.png", "cats/../../x.png", "C:/x.png", "cats\\..\\x.png"])
def test_zip_slip_names_are_refused(name):
    data = make_zip({"cats/a.png": png((1, 2, 3)), "dogs/b.png": png((3, 2, 1)), name: png((0, 0, 0))})
    with pytest.raises(ZipDataError, match="outside the archive"):
        load_zip(data)


def test_oversized_and_bomb_members_are_refused_without_inflating():
    bomb = b"\0" * (3 * 2**20)  # 3 MB of zeros compress ~1000:1
    data = make_zip({"cats/a.png": png((1, 2, 3)), "dogs/b.png": png((3, 2, 1)),
                     "dogs/big.png": bomb, "cats/huge.png": bomb})
    d = load_zip(data, max_member_bytes=2 * 2**20)
    skipped = dict(d.skipped)
    assert "over the 2 MB limit" in skipped["dogs/big.png"]
    d = load_zip(data)  # under the per-file cap, but compressed far too well
    assert "zip bomb" in dict(d.skipped)["cats/huge.png"]
    assert d.counts == {"cats": 1, "dogs": 1}


def test_a_member_lying_about_its_size_is_cut_off():
    data = bytearray(make_zip({"cats/a.png": png((1, 2, 3)), "dogs/b.png": png((3, 2, 1)),
                               "dogs/liar.png": b"\0" * 5000}, compression=zipfile.ZIP_STORED))
    # Rewrite the declared size (local header and central directory) to 100 bytes.
    zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = zf.getinfo("dogs/liar.png")
    zf.close()
    off = info.header_offset
    data[off + 22:off + 26] = struct.pack("<I", 100)
    cd = bytes(data).rfind(b"PK\x01\x02", 0, len(data))
    data[cd + 24:cd + 28] = struct.pack("<I", 100)
    d = load_zip(bytes(data), max_member_bytes=1000)
    reason = dict(d.skipped)["dogs/liar.png"]
    assert "inflates" in reason or "damaged" in reason


# --- torchvision datasets --------------------------------------------------------------------------
def test_vision_offline_says_so_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_DATA_DIR", str(tmp_path))
    for name in vision.DATASETS:
        t = time.monotonic()
        with pytest.raises(vision.DatasetUnavailable, match="offline|download"):
            vision.load(name)
        assert time.monotonic() - t < 2.0
    monkeypatch.setenv("VIT_OFFLINE", "1")  # and when told outright, without probing
    assert vision.host_reachable("https://example.com") is False


def _idx(arr: np.ndarray) -> bytes:
    dims = arr.shape
    head = struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    return head + arr.astype(np.uint8).tobytes()


def test_vision_reads_local_files_and_plugs_into_the_trainer(tmp_path, monkeypatch):
    """A fake MNIST in torchvision's layout (no network): loaded as RGB, resized per batch."""
    monkeypatch.setenv("VIT_DATA_DIR", str(tmp_path))
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 50), ("t10k", 20)):
        (raw / f"{split}-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 255, (n, 28, 28))))
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(_idx(np.arange(n) % 10))
    assert vision.is_cached("mnist")
    d = vision.load("mnist")
    assert d.train_images.shape == (50, 3, 28, 28) and d.test_labels.shape == (20,)
    from vit_core.training.config import get_preset

    cfg = get_preset("shapes-quick", dataset="mnist", img_size=32, batch_size=8, train_size=16, val_size=10)
    src = vision.data_source(cfg)
    x, y = src.train_batch(0)
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.uint8 and src.train_size == 16
    assert src.val_images.shape == (10, 3, 32, 32) and len(src.classes) == 10


def test_a_zip_trains_through_a_job(tmp_path):
    """The page's zip path end to end: decode, split, train a few steps, save with the folder names."""
    from vit_core.training import jobs
    from vit_core.io import loading
    from vit_core.training import plans
    from vit_core.model import ViTConfig
    from vit_core.training.config import get_preset
    from vit_core.training.store import ModelStore

    rng = np.random.default_rng(0)
    members = {f"{c}/{i}.png": png(tuple(int(v) for v in rng.integers(0, 255, 3)) if c == "noise" else col)
               for c, col in (("red", (220, 20, 20)), ("noise", None)) for i in range(6)}
    d = load_zip(make_zip(members), size=32)
    cfg = get_preset("shapes-quick", dataset="zip", img_size=32, batch_size=4, max_steps=3, max_seconds=None,
                     eval_every=2, snapshot_every=2, val_size=10_000, num_threads=1, train_size=None,
                     vit=ViTConfig(img_size=32, patch_size=8, num_classes=2, embed_dim=32, depth=1, num_heads=2))
    plan = plans.plan_train(cfg, data=plans.zip_recipe(d), store=ModelStore(tmp_path), owner="class",
                            data_label="zip")
    m = jobs.JobManager(alive=lambda s: None)
    try:
        job = m.submit("z", plan)
        job.thread.join(120)
        assert job.state == "done" and job.reason == "finished", job.error
        assert job.logs[0].steps[-1].step == 3 and job.logs[0].snapshots
        assert loading.load_model(f"file:{job.saved}").class_names == ["noise", "red"]
    finally:
        m.shutdown()
