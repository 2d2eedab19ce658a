"""The lecture's numbers: the ViT paper's tables as data, and pure calculators for the talk.

Nothing here imports Streamlit or torch: the narrative pages and the tests read the same data.
Sources: Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale" (arXiv 2010.11929, ICLR 2021), Table 1 (model variants) and Table 2
(fine-tuned accuracy and pre-training compute).

FLOPs count a multiply-add as 2 floating-point operations.
"""
from __future__ import annotations

from dataclasses import dataclass

PAPER = "Dosovitskiy et al. 2020, An Image is Worth 16x16 Words (ICLR 2021)"
PAPER_URL = "https://arxiv.org/abs/2010.11929"
BYTES_FLOAT32 = 4
HOURS_PER_DAY = 24
DEFAULT_PRICE_PER_CORE_HOUR = 0.5  # USD, the talk's round figure for a TPUv3 core-hour


# --- Table 1: model variants ---------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    layers: int
    width: int  # hidden size D
    mlp: int  # MLP size
    heads: int
    params_m: float  # as printed in the paper (millions)
    source: str = "ViT paper, Table 1"


VARIANTS = (
    Variant("ViT-Base", 12, 768, 3072, 12, 86),
    Variant("ViT-Large", 24, 1024, 4096, 16, 307),
    Variant("ViT-Huge", 32, 1280, 5120, 16, 632),
)
# Smaller widths used by later work (DeiT; Steiner et al., "How to train your ViT"), not the paper.
LATER_VARIANTS = (
    Variant("ViT-Tiny", 12, 192, 768, 3, 5.7, "DeiT (Touvron et al. 2020)"),
    Variant("ViT-Small", 12, 384, 1536, 6, 22, "DeiT (Touvron et al. 2020)"),
)


def variant(name: str) -> Variant:
    for v in VARIANTS + LATER_VARIANTS:
        if v.name.lower() == name.lower() or v.name.split("-")[1][0].lower() == name.lower():
            return v
    raise KeyError(name)


# --- Table 2: results ----------------------------------------------------------------------

# Columns of Table 2, in the paper's order: (short key, label, family, pre-training data).
MODELS = (
    ("vit_h14_jft", "ViT-H/14 (JFT)", "ViT", "JFT-300M"),
    ("vit_l16_jft", "ViT-L/16 (JFT)", "ViT", "JFT-300M"),
    ("vit_l16_i21k", "ViT-L/16 (I21k)", "ViT", "ImageNet-21k"),
    ("bit_l", "BiT-L (ResNet152x4)", "CNN", "JFT-300M"),
    ("noisy_student", "Noisy Student (EfficientNet-L2)", "CNN", "ImageNet + JFT-300M unlabelled"),
)
MODEL_LABELS = {k: label for k, label, _, _ in MODELS}
MODEL_FAMILY = {k: fam for k, _, fam, _ in MODELS}
MODEL_DATA = {k: data for k, _, _, data in MODELS}

# Fine-tuned top-1 accuracy (%); None where the paper reports no number ("-").
RESULTS: dict[str, dict[str, float | None]] = {
    "ImageNet": dict(vit_h14_jft=88.55, vit_l16_jft=87.76, vit_l16_i21k=85.30, bit_l=87.54, noisy_student=88.4),
    "ImageNet ReaL": dict(vit_h14_jft=90.72, vit_l16_jft=90.54, vit_l16_i21k=88.62, bit_l=90.54,
                          noisy_student=90.55),
    "CIFAR-10": dict(vit_h14_jft=99.50, vit_l16_jft=99.42, vit_l16_i21k=99.15, bit_l=99.37, noisy_student=None),
    "CIFAR-100": dict(vit_h14_jft=94.55, vit_l16_jft=93.90, vit_l16_i21k=93.25, bit_l=93.51, noisy_student=None),
    "Oxford-IIIT Pets": dict(vit_h14_jft=97.56, vit_l16_jft=97.32, vit_l16_i21k=94.67, bit_l=96.62,
                             noisy_student=None),
    "Oxford Flowers-102": dict(vit_h14_jft=99.68, vit_l16_jft=99.74, vit_l16_i21k=99.61, bit_l=99.63,
                               noisy_student=None),
    "VTAB (19 tasks)": dict(vit_h14_jft=77.63, vit_l16_jft=76.28, vit_l16_i21k=72.72, bit_l=76.29,
                            noisy_student=None),
}
RESULTS_NOTE = ("Noisy Student on ImageNet: 88.4 in the paper's table, with a slightly better 88.5 "
                "reported elsewhere (footnote of Table 2).")
# Pre-training compute, TPUv3-core-days (last row of Table 2).
CORE_DAYS = dict(vit_h14_jft=2500, vit_l16_jft=680, vit_l16_i21k=230, bit_l=9900, noisy_student=12300)


def results_rows() -> list[dict]:
    """Table 2 in long form: one dict per (dataset, model) with a reported number."""
    rows = []
    for dataset, by_model in RESULTS.items():
        for key, acc in by_model.items():
            if acc is not None:
                rows.append(dict(dataset=dataset, model=MODEL_LABELS[key], key=key, family=MODEL_FAMILY[key],
                                 accuracy=acc, core_days=CORE_DAYS[key]))
    return rows


# --- History --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    date: str  # ISO date (year-month-day of the first arXiv version, or of the venue)
    name: str
    who: str
    line: str
    kind: str  # "NLP", "Vision", "ViT"
    url: str = ""


HISTORY = (
    Event("2017-06-12", "Attention Is All You Need", "Vaswani et al.",
          "The Transformer: translation with attention only, no recurrence and no convolution.",
          "NLP", "https://arxiv.org/abs/1706.03762"),
    Event("2018-10-11", "BERT", "Devlin et al.",
          "Pre-train a Transformer encoder on unlabelled text, fine-tune it per task; "
          "a [CLS] token's output summarises the whole input.", "NLP", "https://arxiv.org/abs/1810.04805"),
    Event("2019-11-08", "Self-attention and convolution", "Cordonnier, Loukas & Jaggi",
          "Shows attention layers can express convolutions; tries 2x2 patches on small CIFAR images.",
          "Vision", "https://arxiv.org/abs/1911.03584"),
    Event("2020-06-17", "Image GPT", "Chen et al.",
          "A Transformer on raw pixels: works, but only at low resolution (up to 64x64) "
          "because cost grows with the square of the sequence length.",
          "Vision", "https://openai.com/research/image-gpt"),
    Event("2020-10-22", "ViT: An Image is Worth 16x16 Words", "Dosovitskiy et al.",
          "A plain Transformer on 16x16 patches; with enough pre-training data it matches or beats "
          "the best CNNs (ICLR 2021).", "ViT", PAPER_URL),
    Event("2020-12-23", "DeiT", "Touvron et al.",
          "Data-efficient training: a ViT trained on ImageNet alone, with strong augmentation "
          "and distillation.", "Vision", "https://arxiv.org/abs/2012.12877"),
    Event("2021-02-26", "CLIP", "Radford et al.",
          "Image and text encoders (the largest image encoder a ViT) trained together on "
          "image-caption pairs.", "Vision", "https://arxiv.org/abs/2103.00020"),
    Event("2021-03-25", "Swin Transformer", "Liu et al.",
          "Attention inside shifted local windows, with a CNN-like pyramid of resolutions.",
          "Vision", "https://arxiv.org/abs/2103.14030"),
    Event("2021-04-29", "DINO", "Caron et al.",
          "Self-supervised ViTs (no labels) whose [CLS] attention segments objects.",
          "Vision", "https://arxiv.org/abs/2104.14294"),
    Event("2021-11-11", "MAE", "He et al.",
          "Masked autoencoders: hide 75% of the patches and reconstruct them, BERT-style pre-training "
          "for images.", "Vision", "https://arxiv.org/abs/2111.06377"),
)



def history_shown(show: str | None) -> list[Event]:
    """The events of one strand of the story: "Language", "Vision" or "All" (None); ViT always."""
    return [e for e in HISTORY if show in (None, "All") or (show == "Language") == (e.kind == "NLP")
            or e.kind == "ViT"]

# --- Words: a one-line explanation of each term of art, for popovers and help= -----------------

GLOSSARY = {
    "head fusion": "How one layer's h attention maps become one before rollout: entry by entry, their mean, "
                   "their maximum or their minimum over the heads.",
    "discard ratio": "Before rollout, zero this fraction of the weakest attention entries in each layer (never "
                     "the [CLS] row or column): less noise, a sharper map.",
    "fused attention": "softmax(Q Kᵀ / √d) V computed in one step by PyTorch's scaled_dot_product_attention "
                       "(FlashAttention-style): the same numbers, faster, without storing the T x T matrix.",
    "logit lens": "Read a prediction from [CLS] after an earlier block by applying the model's final LayerNorm "
                  "and classifier to it, as if the network stopped there (nostalgebraist, 2020).",
    "core-days": "A TPUv3-core-day is one TPU v3 core busy for 24 hours; the paper writes thousands as k, so "
                 "0.23k = 230 core-days.",
    "relevance update": "R ← R + Ā R, once per layer: R starts as the identity (each token relevant to itself); "
                        "Ā is the layer's attention times its gradient for the chosen class, negative values "
                        "set to 0, averaged over the heads. The [CLS] row of the final R is the map.",
}


def clause(text: str) -> str:
    """A sentence used inside another one: its final full stop dropped, so that a bracket or a colon
    after it does not give '…accuracy).):' (the description of a model ends with a full stop)."""
    return text.rstrip().rstrip(".")


def sentence(text: str) -> str:
    """Text ending in exactly one full stop ('Dosovitskiy et al.' stays as it is, not 'et al..')."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


# --- Calculators ----------------------------------------------------------------------------


def num_patches(image_size: int, patch_size: int) -> int:
    """Patches of a square image cut into non-overlapping patch_size x patch_size squares."""
    if image_size <= 0 or patch_size <= 0:
        raise ValueError("image and patch size must be positive")
    return (image_size // patch_size) ** 2


def num_tokens(image_size: int, patch_size: int, cls_token: bool = True) -> int:
    """Sequence length of a ViT: one token per patch, plus [CLS]."""
    return num_patches(image_size, patch_size) + int(cls_token)


def pixel_tokens(image_size: int, channels: int = 3, per_value: bool = True) -> int:
    """Sequence length if every colour value (per_value) or every pixel were a token."""
    return image_size * image_size * (channels if per_value else 1)


def attention_entries(tokens: int) -> int:
    """Scores in one head's attention matrix in one layer: every token against every token."""
    return tokens * tokens


def attention_bytes(tokens: int, heads: int = 1, layers: int = 1, bytes_per: int = BYTES_FLOAT32) -> int:
    """Memory to hold the attention matrices (float32 by default) for `heads` x `layers`."""
    return attention_entries(tokens) * heads * layers * bytes_per


@dataclass(frozen=True)
class LayerFlops:
    """FLOPs of one encoder layer (multiply-add = 2), split by what they grow with."""

    qkv: int  # T x D -> T x 3D
    scores: int  # Q K^T, all heads: T x T x D
    weighted_sum: int  # A V, all heads: T x T x D
    out_proj: int  # T x D -> T x D
    mlp: int  # T x D -> T x M -> T x D

    @property
    def linear(self) -> int:
        """Grows linearly with the number of tokens."""
        return self.qkv + self.out_proj + self.mlp

    @property
    def quadratic(self) -> int:
        """Grows with the square of the number of tokens (the attention itself)."""
        return self.scores + self.weighted_sum

    @property
    def total(self) -> int:
        return self.linear + self.quadratic


def layer_flops(tokens: int, width: int, mlp: int | None = None) -> LayerFlops:
    """FLOPs of one pre-norm encoder layer with T tokens, width D, MLP size M (default 4D).

    Norms, softmax, GELU and residual additions (a few operations per value) are left out.
    """
    T, D = tokens, width
    M = 4 * D if mlp is None else mlp
    return LayerFlops(qkv=2 * T * D * 3 * D, scores=2 * T * T * D, weighted_sum=2 * T * T * D,
                      out_proj=2 * T * D * D, mlp=2 * T * D * M * 2)


def param_count(layers: int, width: int, mlp: int, patch_size: int = 16, image_size: int = 224,
                channels: int = 3, num_classes: int = 1000, cls_token: bool = True) -> int:
    """Exact parameter count of a ViT with biases everywhere (timm's layout)."""
    D, M = width, mlp
    block = (2 * D) + (3 * D * D + 3 * D) + (D * D + D) + (2 * D) + (D * M + M) + (M * D + D)
    embed = channels * patch_size * patch_size * D + D
    tokens = num_tokens(image_size, patch_size, cls_token)
    head = D * num_classes + num_classes if num_classes else 0
    return layers * block + embed + int(cls_token) * D + tokens * D + 2 * D + head


def training_cost(core_days: float, price_per_core_hour: float = DEFAULT_PRICE_PER_CORE_HOUR) -> float:
    """USD to rent `core_days` TPUv3-core-days at `price_per_core_hour`."""
    if core_days < 0 or price_per_core_hour < 0:
        raise ValueError("core-days and price must not be negative")
    return core_days * HOURS_PER_DAY * price_per_core_hour


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (decimal units: KB = 1000 B), for memory figures on the pages."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB", "EB"):
        if abs(n) < 1000 or unit == "EB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def human_count(n: float) -> str:
    """22_658_678_784 -> '22.7 billion'."""
    for value, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if abs(n) >= value:
            return f"{n / value:,.1f} {word}"
    return f"{n:,.0f}"


def human_flops(n: float) -> str:
    for value, unit in ((1e15, "PFLOPs"), (1e12, "TFLOPs"), (1e9, "GFLOPs"), (1e6, "MFLOPs")):
        if abs(n) >= value:
            return f"{n / value:,.1f} {unit}"
    return f"{n:,.0f} FLOPs"


@dataclass(frozen=True)
class SequenceCost:
    """Everything the 'why not pixels' calculator shows for one way of cutting an image."""

    label: str
    tokens: int
    entries: int  # one head, one layer
    bytes_one_head: int
    bytes_all: int  # all heads and layers of the reference model
    flops: LayerFlops


def sequence_cost(label: str, tokens: int, width: int = 768, heads: int = 12, layers: int = 12,
                  mlp: int | None = None) -> SequenceCost:
    return SequenceCost(label, tokens, attention_entries(tokens), attention_bytes(tokens),
                        attention_bytes(tokens, heads, layers), layer_flops(tokens, width, mlp))
