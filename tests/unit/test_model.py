"""Our VisionTransformer against timm's, on random weights (no downloads, CPU)."""
import pytest
import timm
import torch
import torch.nn.functional as F

from vit_core.model import VisionTransformer, count_params

ATOL = 1e-4


def _perturb(m: torch.nn.Module, seed: int) -> None:
    """timm's init leaves attention almost uniform; noise makes the comparison bite."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _timm_pair(name: str, seed: int = 0, **kwargs):
    # weight_init="skip": PyTorch's default init (+ the noise below) is as random as timm's, 5x cheaper.
    torch.manual_seed(seed)
    m = timm.create_model(name, pretrained=False, weight_init="skip", **kwargs).eval()
    with torch.no_grad():  # "skip" leaves these two torch.empty
        m.cls_token.normal_(std=0.02)
        m.pos_embed.normal_(std=0.02)
    _perturb(m, seed)
    return m, VisionTransformer.from_timm(m).eval()


def _timm_run(m, x):
    """timm logits, every block's output and every attention map (softmax, via attn_drop's input)."""
    for b in m.blocks:
        b.attn.fused_attn = False
    outs, attn = [], []
    hooks = [b.attn.attn_drop.register_forward_hook(lambda mod, inp, out: attn.append(inp[0])) for b in m.blocks]
    hooks += [b.register_forward_hook(lambda mod, inp, out: outs.append(out)) for b in m.blocks]
    try:
        with torch.no_grad():
            logits = m(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, outs, attn


CASES = [
    ("vit_tiny_patch16_224", {}, (2, 3, 224, 224)),
    ("vit_small_patch32_224", {}, (2, 3, 224, 224)),
    ("vit_base_patch16_224", {}, (1, 3, 224, 224)),
    ("deit_small_patch16_224", {}, (1, 3, 224, 224)),
    ("vit_tiny_patch16_224", {"num_classes": 0}, (2, 3, 224, 224)),
    ("vit_tiny_patch16_224", {"dynamic_img_size": True}, (1, 3, 160, 192)),
]


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=[f"{n}-{'-'.join(k) or 'plain'}" for n, k, _ in CASES])
def test_parity_with_timm(name, kwargs, shape):
    m, ours = _timm_pair(name, **kwargs)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    logits, outs, attn = _timm_run(m, x)
    tr = ours.trace(x)
    assert len(outs) == len(attn) == len(tr.attn) == len(tr.tokens) - 1 == ours.cfg.depth
    assert tr.logits.shape == logits.shape
    torch.testing.assert_close(tr.logits, logits, atol=ATOL, rtol=0)
    for ours_z, ref in zip(tr.tokens[1:], outs):
        torch.testing.assert_close(ours_z, ref, atol=ATOL, rtol=0)
    for ours_a, ref in zip(tr.attn, attn):
        torch.testing.assert_close(ours_a, ref, atol=ATOL, rtol=0)
    T = tr.attn[0].shape[-1]
    assert T == ours.num_prefix_tokens + (shape[2] // ours.cfg.patch_size) * (shape[3] // ours.cfg.patch_size)
    assert max(float(a.max()) for a in tr.attn) > 3.0 / T  # not uniform: the comparison means something
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tr.logits, atol=1e-5, rtol=0)  # fused path == explicit path
    for a in tr.attn:
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def tiny():
    return _timm_pair("vit_tiny_patch16_224", seed=3)


def test_vit_ti_parameter_count(tiny):
    m, ours = tiny
    assert count_params(ours) == count_params(m) == 5_717_416


def test_conv_patch_embedding_is_unfold_plus_linear(tiny):
    _, ours = tiny
    x = torch.randn(2, 3, 224, 224)
    tr = ours.trace(x)
    W, b = ours.patch_embed.proj.weight, ours.patch_embed.proj.bias  # (D, C, P, P), (D,)
    manual = tr.patches @ W.reshape(W.shape[0], -1).T + b
    torch.testing.assert_close(manual, tr.patch_embed, atol=1e-5, rtol=0)
    ref = F.unfold(x, kernel_size=16, stride=16).transpose(1, 2)
    torch.testing.assert_close(tr.patches, ref)


def test_trace_is_stateless(tiny):
    _, ours = tiny
    before_sd = {k: v.clone() for k, v in ours.state_dict().items()}
    before_attrs = {name: set(vars(mod)) for name, mod in ours.named_modules()}
    before_vars = {k: v for k, v in vars(ours).items() if not k.startswith("_")}
    ours.trace(torch.randn(1, 3, 224, 224))
    ours.trace(torch.randn(1, 3, 160, 192))
    assert {name: set(vars(mod)) for name, mod in ours.named_modules()} == before_attrs
    assert {k: v for k, v in vars(ours).items() if not k.startswith("_")} == before_vars
    after_sd = ours.state_dict()
    assert after_sd.keys() == before_sd.keys()
    assert all(torch.equal(after_sd[k], v) for k, v in before_sd.items())


def test_trace_keeps_attention_in_graph(tiny):
    _, ours = tiny
    frozen = VisionTransformer(ours.cfg)
    frozen.load_state_dict(ours.state_dict())
    frozen.eval().requires_grad_(False)  # as load_model returns it
    x = torch.randn(1, 3, 224, 224, requires_grad=True)
    tr = frozen.trace(x, requires_grad=True)
    c = int(tr.logits[0].argmax())
    (g,) = torch.autograd.grad(tr.logits[0, c], tr.attn[0])
    assert g is not None and float(g.abs().sum()) > 0
    tr = frozen.trace(x)  # default: no graph
    assert tr.attn[0].grad_fn is None and not tr.logits.requires_grad


def test_attention_logits_are_recomputed_exactly(tiny):
    """trace.attn_logits(l) is not stored but recomputed from q and k: its softmax must be the
    kept attention bit for bit, and it must be q.k / sqrt(hd)."""
    _, ours = tiny
    with torch.no_grad():
        tr = ours.trace(torch.randn(2, 3, 224, 224))
    for layer in (0, len(tr.attn) - 1):
        logits = tr.attn_logits(layer)
        assert logits.shape == tr.attn[layer].shape
        assert torch.equal(logits.softmax(-1), tr.attn[layer])
        q, k = tr.q[layer], tr.k[layer]
        assert torch.allclose(logits, torch.einsum("bhtd,bhsd->bhts", q, k) / q.shape[-1] ** 0.5, atol=1e-5)
