"""A Vision Transformer you can see inside (Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words").

The model, written to be read top to bottom. Parameter names are timm's, so any timm
``VisionTransformer`` state dict loads strictly, with no mapping table.

The paper's equations (Sec. 3.1), with x_p^i the i-th flattened P x P patch, E the patch
projection and E_pos the position embeddings::

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos          E in R^{(P^2 C) x D}
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                       l = 1..L
    z_l = MLP(LN(z'_l)) + z'_l                              l = 1..L
    y = LN(z_L^0)                                           (then a linear head)

Two paths share every weight:
    * ``forward`` uses fused ``scaled_dot_product_attention``: fast, but it never materialises the
      attention probabilities, so nothing can be shown from it.
    * ``trace`` computes attention explicitly and returns every intermediate in a ``ViTTrace``.
      Nothing is stored on the module: one cached model is shared by every session of the app.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ViTConfig:
    """Architecture hyper-parameters, with timm's field names."""

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    qk_norm: bool = False
    init_values: float | None = None  # LayerScale (DeiT III); None = off
    class_token: bool = True
    reg_tokens: int = 0
    no_embed_class: bool = False
    pre_norm: bool = False
    global_pool: str = "token"  # "token" (read [CLS]) or "avg" (mean of patch tokens)
    fc_norm: bool | None = None  # None: timm's default, on exactly when global_pool == "avg"
    norm_eps: float = 1e-6

    @property
    def grid_size(self) -> tuple[int, int]:
        return (self.img_size // self.patch_size, self.img_size // self.patch_size)

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.class_token) + self.reg_tokens

    @property
    def use_fc_norm(self) -> bool:
        return self.global_pool == "avg" if self.fc_norm is None else self.fc_norm

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ViTConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"Unknown ViTConfig fields: {sorted(unknown)}")
        return cls(**d)


@dataclass
class ViTTrace:
    """Every intermediate of one explicit forward pass. Lists have one entry per block."""

    patches: torch.Tensor  # (B, N, C*P*P) raw input values of each patch, channel-major
    patch_embed: torch.Tensor  # (B, N, D) the linear projection of each patch
    tokens: list[torch.Tensor]  # L+1 x (B, T, D): encoder input, then each block's output
    q: list[torch.Tensor]  # L x (B, h, T, hd)
    k: list[torch.Tensor]  # L x (B, h, T, hd)
    v: list[torch.Tensor]  # L x (B, h, T, hd)
    attn: list[torch.Tensor]  # L x (B, h, T, T), softmax over keys; rows sum to 1
    features: torch.Tensor  # (B, T, D) after the final norm
    logits: torch.Tensor  # (B, num_classes), or pooled features when num_classes == 0
    grid: tuple[int, int] = (0, 0)  # (gh, gw) patch grid of this input
    num_prefix_tokens: int = 1  # [CLS] + registers, in front of the N patch tokens
    pos_embed: torch.Tensor | None = field(default=None)  # (1, T or N, D) as added to this input

    def attn_logits(self, layer: int) -> torch.Tensor:
        """q.k / sqrt(hd) of one block, (B, h, T, T), the softmax's input. Recomputed from the kept
        q and k with the same op as the forward pass (so bit-identical), not kept: that saves
        22 MB per ViT-B/16 trace, and no page needs all layers' logits at once."""
        q, k = self.q[layer], self.k[layer]
        return (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, h, T, T)


class PatchEmbed(nn.Module):
    """Cut into P x P patches and project each to D: one Conv2d with kernel = stride = P."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, cfg.patch_size, cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, D, gh, gw)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_values: float):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention: softmax(Q K^T / sqrt(d_k)) V for each head, then a projection."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.num_heads = cfg.num_heads
        self.head_dim = dim // cfg.num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=cfg.qkv_bias)
        norm = (lambda: nn.LayerNorm(self.head_dim, eps=cfg.norm_eps)) if cfg.qk_norm else nn.Identity
        self.q_norm, self.k_norm = norm(), norm()
        self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim)  # (B, T, 3, h, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, T, hd)
        return self.q_norm(q), self.k_norm(k), v

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        B, h, T, hd = out.shape
        return self.proj(out.transpose(1, 2).reshape(B, T, h * hd))  # (B, T, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_heads(x)
        return self.merge(F.scaled_dot_product_attention(q, k, v))  # fused: no probabilities kept

    def explicit(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The same computation with every step kept, for the explainer."""
        q, k, v = self.qkv_heads(x)
        logits = (q * self.scale) @ k.transpose(-2, -1)  # (B, h, T, T)
        attn = logits.softmax(dim=-1)
        out = self.merge(attn @ v)  # (B, h, T, hd) -> (B, T, D)
        return out, {"q": q, "k": k, "v": v, "attn": attn}


class Mlp(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.embed_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm encoder block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        scale = (lambda: LayerScale(cfg.embed_dim, cfg.init_values)) if cfg.init_values else nn.Identity
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ls1 = scale()
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg)
        self.ls2 = scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))

    def explicit(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out, parts = self.attn.explicit(self.norm1(x))
        x = x + self.ls1(out)
        return x + self.ls2(self.mlp(self.norm2(x))), parts


class VisionTransformer(nn.Module):
    """ViT with timm's parameter names and its forward_features / forward_head split."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        self.num_prefix_tokens = cfg.num_prefix_tokens
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D)) if cfg.class_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, cfg.reg_tokens, D)) if cfg.reg_tokens else None
        pos_len = cfg.num_patches + (0 if cfg.no_embed_class else cfg.num_prefix_tokens)
        # On the meta device (shapes only, to check a file before loading it) random init runs Python
        # reference ops that import sympy and torch._dynamo: ~1.5 s of the app's start-up. Skip it there.
        meta = torch.empty(0).is_meta
        self.pos_embed = nn.Parameter(torch.empty(1, pos_len, D) if meta else torch.randn(1, pos_len, D) * 0.02)
        self.norm_pre = nn.LayerNorm(D, eps=cfg.norm_eps) if cfg.pre_norm else nn.Identity()
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.Identity() if cfg.use_fc_norm else nn.LayerNorm(D, eps=cfg.norm_eps)
        self.fc_norm = nn.LayerNorm(D, eps=cfg.norm_eps) if cfg.use_fc_norm else nn.Identity()
        self.head = nn.Linear(D, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        if meta:
            return
        self.apply(self._init_weights)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.reg_token is not None:
            nn.init.normal_(self.reg_token, std=1e-6)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # --- embedding -------------------------------------------------------------------------
    def resized_pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        """Position embeddings for a gh x gw grid, resampled as timm's dynamic_img_size does."""
        if tuple(grid) == self.cfg.grid_size:
            return self.pos_embed
        prefix = 0 if self.cfg.no_embed_class else self.num_prefix_tokens
        from vit_core import LAZY_IMPORTS

        with LAZY_IMPORTS:
            from timm.layers import resample_abs_pos_embed  # imports torchvision (~1.7 s): only when resizing

        return resample_abs_pos_embed(
            self.pos_embed, new_size=list(grid), old_size=list(self.cfg.grid_size), num_prefix_tokens=prefix
        )

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], torch.Tensor]:
        B = x.shape[0]
        grid = (x.shape[-2] // self.cfg.patch_size, x.shape[-1] // self.cfg.patch_size)
        emb = self.patch_embed(x)  # (B, N, D)
        pos = self.resized_pos_embed(grid)
        prefix = [t.expand(B, -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
        if self.cfg.no_embed_class:
            z = torch.cat(prefix + [emb + pos], dim=1)  # (B, T, D)
        else:
            z = torch.cat(prefix + [emb], dim=1) + pos  # (B, T, D)
        return self.norm_pre(z), emb, grid, pos

    # --- fast path -------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        z = self._embed(x)[0]
        for blk in self.blocks:
            z = blk(z)
        return self.norm(z)  # (B, T, D)

    def forward_head(self, z: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.cfg.global_pool == "avg":
            z = z[:, self.num_prefix_tokens :].mean(dim=1)  # (B, D)
        else:
            z = z[:, 0]  # (B, D): the [CLS] token
        z = self.fc_norm(z)
        return z if pre_logits else self.head(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # --- explicit path ---------------------------------------------------------------------
    def trace(self, x: torch.Tensor, requires_grad: bool = False) -> ViTTrace:
        """Run the model keeping every intermediate.

        Args:
            x: normalised images (B, C, H, W); H and W need not be the training size.
            requires_grad: keep the attention maps in the autograd graph (for class-specific
                relevance); otherwise runs without building a graph.

        Returns:
            A ViTTrace; ``trace.logits`` equals ``forward(x)`` to float rounding.
        """
        with torch.set_grad_enabled(requires_grad):
            P = self.cfg.patch_size
            z, emb, grid, pos = self._embed(x)
            gh, gw = grid
            crop = x[..., : gh * P, : gw * P]
            patches = F.unfold(crop, kernel_size=P, stride=P).transpose(1, 2)  # (B, N, C*P*P)
            tokens, parts = [z], {k: [] for k in ("q", "k", "v", "attn")}
            for blk in self.blocks:
                z, p = blk.explicit(z)
                tokens.append(z)
                for name, t in p.items():
                    parts[name].append(t)
            feats = self.norm(z)
            logits = self.forward_head(feats)
        return ViTTrace(
            patches=patches, patch_embed=emb, tokens=tokens, features=feats, logits=logits,
            grid=grid, num_prefix_tokens=self.num_prefix_tokens, pos_embed=pos, **parts,
        )

    # --- interop ---------------------------------------------------------------------------
    @classmethod
    def config_from_timm(cls, m: nn.Module) -> ViTConfig:
        """Read a timm VisionTransformer's architecture off its modules."""
        blk = m.blocks[0]
        img = m.patch_embed.img_size
        patch = m.patch_embed.patch_size
        if img[0] != img[1] or patch[0] != patch[1]:
            raise ValueError("Only square images and patches are supported.")
        embed_dim = m.patch_embed.proj.out_channels
        return ViTConfig(
            img_size=img[0], patch_size=patch[0], in_chans=m.patch_embed.proj.in_channels,
            num_classes=m.num_classes, embed_dim=embed_dim, depth=len(m.blocks),
            num_heads=blk.attn.num_heads, mlp_ratio=blk.mlp.fc1.out_features / embed_dim,
            qkv_bias=blk.attn.qkv.bias is not None, qk_norm=not isinstance(blk.attn.q_norm, nn.Identity),
            init_values=float(blk.ls1.gamma.flatten()[0]) if hasattr(blk.ls1, "gamma") else None,
            class_token=m.cls_token is not None, reg_tokens=getattr(m, "num_reg_tokens", 0),
            no_embed_class=m.no_embed_class, pre_norm=not isinstance(m.norm_pre, nn.Identity),
            global_pool=m.global_pool, fc_norm=not isinstance(m.fc_norm, nn.Identity),
            norm_eps=blk.norm1.eps,
        )

    @classmethod
    def from_timm(cls, m: nn.Module) -> "VisionTransformer":
        """Same architecture and weights as a timm VisionTransformer (strict load)."""
        if m.global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool={m.global_pool!r} is not supported (token or avg).")
        model = cls(cls.config_from_timm(m))
        model.load_state_dict(m.state_dict(), strict=True)
        return model.train(m.training)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ViTConfig", "ViTTrace", "VisionTransformer", "count_params"]
