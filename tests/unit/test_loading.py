"""vit_core.io.loading: timm weights from local files and a fake hub cache, safety, offline behaviour.

No downloads: every test points the hub cache at a tmp dir and the hub endpoint at a closed port on
127.0.0.1, so nothing here can leave the machine.
"""
import json
import os
import pickle
import socket
import time

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from vit_core.io import hub

from vit_core.io import loading
from vit_core.io.loading import ModelUnavailable, load_model, model_status, save_model
from vit_core.model import ViTConfig, VisionTransformer

TINY = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def hf_env(monkeypatch, tmp_path):
    """A private, empty HF cache and an unreachable (loopback) hub for every test."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    hub.clear_online_cache()
    yield tmp_path / "hf" / "hub"
    hub.clear_online_cache()


def _timm_random(name: str, seed: int = 0):
    torch.manual_seed(seed)
    m = timm.create_model(name, pretrained=False, weight_init="skip").eval()  # PyTorch's init: cheaper
    with torch.no_grad():  # "skip" leaves these two torch.empty
        m.cls_token.normal_(std=0.02)
        m.pos_embed.normal_(std=0.02)
    return m


def _x(n=1, size=224):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(7))


def _assert_same_outputs(loaded, ref, x, atol=1e-5):
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), ref(x), atol=atol, rtol=0)


def _assert_frozen(loaded):
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())


SMALL = ViTConfig(img_size=64, patch_size=8, num_classes=4, embed_dim=32, depth=2, num_heads=2)
DC = {"input_size": [3, 64, 64], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "crop_pct": 1.0,
      "interpolation": "bicubic"}  # no crop_mode, as vit_core.training.loop writes it: defaults fill it in


# --- timm weights from local files -----------------------------------------------------------
@pytest.mark.parametrize("name", [TINY, "deit_small_patch16_224.fb_in1k"])
def test_timm_weights_from_safetensors(name, tmp_path):
    ref = _timm_random(name)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    lm = load_model(f"timm:{name}", weights=path)
    assert isinstance(lm.model, VisionTransformer) and lm.source == "file" and lm.spec == f"timm:{name}"
    _assert_frozen(lm)
    _assert_same_outputs(lm, ref, _x())
    assert len(lm.class_names) == 1000 and lm.class_names[207] == "golden retriever"
    assert "w.safetensors" in lm.description
    img = Image.new("RGB", (320, 200), (120, 30, 200))
    assert tuple(lm.transform(img).shape) == tuple(lm.data_config["input_size"]) == (3, 224, 224)
    assert lm.data_config["mean"] == ref.pretrained_cfg["mean"]


def test_timm_weights_from_pth_state_dict(tmp_path):
    ref = _timm_random(TINY, seed=1)
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    lm = load_model(f"timm:{TINY}", weights=path)
    _assert_same_outputs(lm, ref, _x())


def test_weights_that_do_not_fit_are_a_clear_error(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in _timm_random("vit_small_patch32_224").state_dict().items()}, str(path))
    with pytest.raises(ValueError, match="do not fit"):
        load_model(f"timm:{TINY}", weights=path)


# --- malicious pickles never run ---------------------------------------------------------------
class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


class _EvilEnv:
    def __reduce__(self):
        return (exec, ("import os; os.environ['VIT_EXPLAINER_PWNED'] = '1'",))


@pytest.fixture
def evil_files(tmp_path):
    marker = tmp_path / "PWNED"
    pth = tmp_path / "evil.pth"
    torch.save({"patch_embed.proj.weight": _Evil(marker), "x": _EvilEnv()}, pth)
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(pickle.dumps({"a": _Evil(marker), "b": _EvilEnv()}))
    (tmp_path / "evil.json").write_text(json.dumps({  # a valid sidecar: the weights file itself is refused
        "format": loading.FORMAT, "vit": SMALL.to_dict(), "class_names": list("abcd"), "data_config": DC}))
    return marker, pth, disguised


def _assert_not_run(marker):
    assert not marker.exists()
    assert "VIT_EXPLAINER_PWNED" not in os.environ


def test_pickle_refused_via_file_spec(evil_files):
    marker, pth, disguised = evil_files
    with pytest.raises(ValueError, match="must be .safetensors"):
        load_model(f"file:{pth}")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_model(f"file:{disguised}")
    _assert_not_run(marker)


def test_pickle_refused_via_weights(evil_files):
    marker, pth, _ = evil_files
    with pytest.raises(ValueError, match="Refused evil.pth.*weights_only"):
        load_model(f"timm:{TINY}", weights=pth)
    _assert_not_run(marker)


# --- models saved by the app -------------------------------------------------------------------
@pytest.fixture
def small_model():
    torch.manual_seed(0)
    return VisionTransformer(SMALL).eval()


def test_save_model_file_round_trip(small_model, tmp_path):
    names = ["circle", "square", "triangle", "star"]
    st = save_model(tmp_path / "models" / "run1.safetensors", small_model, names, DC, {"dataset": "shapes"})
    assert st == tmp_path / "models" / "run1.safetensors" and st.with_suffix(".json").is_file()
    lm = load_model(f"file:{st}")
    assert lm.source == "file" and lm.class_names == names and "shapes" in lm.description
    _assert_frozen(lm)
    x = _x(2, 64)
    with torch.no_grad():
        assert torch.equal(lm.model(x), small_model(x))
    assert lm.model.cfg == SMALL and lm.data_config["crop_mode"] == "center"
    assert tuple(lm.transform(Image.new("RGB", (90, 70))).shape) == (3, 64, 64)
    d = save_model(tmp_path / "models" / "run2", small_model, names, DC, {})
    assert d == tmp_path / "models" / "run2" / "model.safetensors"
    assert loading.list_user_models(tmp_path / "models") == [st, d]
    assert loading.list_user_models(tmp_path / "nothing") == []
    status = model_status(f"file:{st}")
    assert status.state == "file" and status.size_mb > 0


def test_bundled_model(small_model, tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "BUNDLED_DIR", tmp_path / "assets")
    with pytest.raises(ModelUnavailable, match="make model"):
        load_model("bundled:shapes-vit")
    assert model_status("bundled:shapes-vit").state == "unavailable"
    save_model(tmp_path / "assets" / "shapes-vit", small_model, list("abcd"), DC, {"description": "Shapes."})
    lm = load_model("bundled:shapes-vit")
    assert lm.source == "bundled" and lm.description == "Shapes." and lm.class_names == list("abcd")
    assert model_status("bundled:shapes-vit").state == "bundled"


def test_file_that_does_not_match_its_sidecar(small_model, tmp_path):
    st = save_model(tmp_path / "m.safetensors", small_model, list("abcd"), DC, {})
    js = st.with_suffix(".json")
    text = js.read_text()
    js.write_text(text.replace('"embed_dim": 32', '"embed_dim": 64'))
    with pytest.raises(ValueError, match="does not match its config"):
        load_model(f"file:{st}")
    js.write_text(text.replace("vit-explainer/1", "other/9"))
    with pytest.raises(ValueError, match="Bad sidecar"):
        load_model(f"file:{st}")
    js.unlink()
    with pytest.raises(ModelUnavailable, match="sidecar"):
        load_model(f"file:{st}")


def test_parity_guard_for_unverified_variants():
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    torch.manual_seed(0)
    m = TimmViT(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3).eval()
    loading._check_parity(m, loading._from_timm(m, "toy"), "toy")  # passes
    ours = VisionTransformer.from_timm(m)  # its own copy of the weights
    with torch.no_grad():
        ours.head.bias.add_(1.0)
    with pytest.raises(ValueError, match="does not reproduce"):
        loading._check_parity(m, ours, "toy")


# --- DINO: features only -----------------------------------------------------------------------
def test_dino_is_features_only():
    lm = load_model("timm:vit_small_patch16_224.dino", pretrained=False)
    assert lm.source == "random" and lm.model.cfg.num_classes == 0 and lm.class_names == []
    assert "features" in lm.description and "no classifier" in lm.description
    with torch.no_grad():
        assert lm.model(_x()).shape == (1, 384)


# --- the hub: cache first, offline fast --------------------------------------------------------
def _fake_cache(cache, repo: str, state_dict) -> None:
    """huggingface_hub's cache layout: models--org--name/{refs/main, snapshots/<rev>/model.safetensors}."""
    rev = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "snapshots" / rev).mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(rev)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(root / "snapshots" / rev / "model.safetensors"))


def _no_network(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("network touched")

    monkeypatch.setattr(hub.socket, "create_connection", boom)
    monkeypatch.setattr(hub, "download", boom)


def test_cached_weights_load_offline(hf_env, monkeypatch):
    ref = _timm_random(TINY, seed=2)
    _fake_cache(hf_env, f"timm/{TINY}", ref.state_dict())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _no_network(monkeypatch)
    status = model_status(f"timm:{TINY}")
    assert status.state == "cached" and status.size_mb == pytest.approx(22.9, abs=0.5)
    lm = load_model(f"timm:{TINY}")
    assert lm.source == "pretrained" and "cache" in lm.description
    _assert_same_outputs(lm, ref, _x())


def _assert_fix_named(err, name):
    msg = str(err.value)
    assert "Download" in msg and f"python -m vit_core.io.prefetch timm:{name}" in msg


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "closed port"])
def test_uncached_offline_is_fast_and_names_the_fix(how, monkeypatch):
    hub.timm_cfg(TINY)  # name validation (timm import work) is not what is timed
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        _no_network(monkeypatch)
    t = time.perf_counter()
    with pytest.raises(ModelUnavailable) as err:
        load_model(f"timm:{TINY}")
    assert time.perf_counter() - t < 1.5
    _assert_fix_named(err, TINY)
    t = time.perf_counter()
    status = model_status(f"timm:{TINY}")
    assert time.perf_counter() - t < 1.0
    assert status.state == "unavailable" and status.size_mb == pytest.approx(22.9)
    assert f"python -m vit_core.io.prefetch timm:{TINY}" in status.note
    assert not hub.is_online()


def test_online_probe_is_bounded(monkeypatch):
    def black_hole(*a, **k):
        time.sleep(2)
        raise TimeoutError

    monkeypatch.setattr(hub.socket, "create_connection", black_hole)
    t = time.perf_counter()
    assert hub.is_online(timeout=0.3) is False
    assert time.perf_counter() - t < 1.0
    t = time.perf_counter()
    assert hub.is_online() is False  # cached
    assert time.perf_counter() - t < 0.05


def test_download_path_reports_progress(hf_env, monkeypatch, tmp_path):
    """The online path with a fake hf_hub_download: progress reaches 1, timm loads the file."""
    import huggingface_hub

    ref = _timm_random(TINY, seed=4)
    src = tmp_path / "dl.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(src))
    seen = []

    def fake_download(repo_id, filename, *, cache_dir, endpoint, tqdm_class):
        assert repo_id == f"timm/{TINY}" and filename == "model.safetensors" and str(cache_dir) == str(hf_env)
        size = src.stat().st_size
        bar = tqdm_class(total=size, initial=0, unit="B", unit_scale=True, desc=filename)
        for _ in range(4):
            bar.update(size // 4)
        bar.update(size % 4)
        bar.close()
        return str(src)

    monkeypatch.setattr(hub, "is_online", lambda timeout=0.8: True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    lm = load_model(f"timm:{TINY}", progress=lambda f, msg: seen.append((f, msg)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 4
    assert lm.source == "pretrained" and "downloaded" in lm.description
    _assert_same_outputs(lm, ref, _x())


# --- bad specs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,match", [
    ("foo:bar", "Accepted specs"),
    ("vit_base_patch16_224", "Accepted specs"),
    ("timm:", "Accepted specs"),
    ("timm:not_a_model_at_all", "Unknown timm model"),
    ("timm:resnet50", "not a Vision Transformer"),
    ("timm:vit_small_patch16_224.nope", "Available: .*vit_small_patch16_224.dino"),
    ("timm:deit_small_distilled_patch16_224", "not a plain ViT"),
    ("timm:vit_base_patch16_siglip_224", "not a plain ViT"),
    ("bundled:../secrets", "Bad bundled model name"),
    ("file:/tmp/model.ckpt", "must be .safetensors"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        load_model(spec, pretrained=False)
    with pytest.raises(ValueError, match=match):
        model_status(spec)


def test_missing_file_spec(tmp_path):
    with pytest.raises(ModelUnavailable):
        load_model(f"file:{tmp_path / 'gone.safetensors'}")
    assert model_status(f"file:{tmp_path / 'gone.safetensors'}").state == "unavailable"


def test_catalog_and_prefetch_cli(monkeypatch, capsys):
    from vit_core.io import prefetch

    specs = [s for s, _ in loading.CATALOG]
    assert specs[0] == "bundled:shapes-vit" and f"timm:{TINY}" in specs and "timm:vit_small_patch16_224.dino" in specs
    assert "bundled:shapes-vit-stage1" in specs  # the shortcut lesson's model, pickable too
    for spec in specs:
        if spec.startswith("bundled:"):  # a folder under assets/models: a valid name, no timm involved
            assert model_status(spec).state in ("bundled", "unavailable")
        else:
            hub.timm_cfg(spec.split(":", 1)[1])  # every catalog ViT is accepted
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert prefetch.main(["--list"]) == 0
    assert "unavailable" in capsys.readouterr().out
    assert prefetch.main([f"timm:{TINY}"]) == 1
    assert "prefetch" in capsys.readouterr().err


def test_catalog_cached_is_a_file_check_that_agrees_with_timm(hf_env):
    """The start-up probe (no timm import) must name the same repos as timm's pretrained cfgs,
    and see weights once they are in the Hugging Face cache layout."""
    for spec in [s for s, _ in loading.CATALOG if s.startswith("timm:")]:
        name = spec.split(":", 1)[1]
        assert hub.timm_cfg(name).hf_hub_id == f"timm/{name}"
        assert hub.catalog_cached(name) is False
    assert hub.catalog_cached("vit_huge_patch14_224.not_in_catalog") is None
    name = TINY
    snap = hf_env / f"models--timm--{name}" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"x")
    (hf_env / f"models--timm--{name}" / "refs").mkdir()
    (hf_env / f"models--timm--{name}" / "refs" / "main").write_text("abc123")
    assert hub.catalog_cached(name) is True
    assert model_status(f"timm:{name}").state == "cached"  # the full probe agrees


def test_device_label_counts_threads_in_words():
    """The sidebar says "CPU (1 thread)" on a server that gives each pass one thread."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert loading.device_label("cpu") == "CPU (1 thread)"
        torch.set_num_threads(2)
        assert loading.device_label("cpu") == "CPU (2 threads)"
    finally:
        torch.set_num_threads(before)
