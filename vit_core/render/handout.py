"""A one-file HTML handout: the current image walked through every step of the ViT, with captions.

``build_handout`` takes the cached ``explain.Analysis`` and ``explain.ModelFigures`` (no model
needed) and returns one self-contained HTML page: every figure is a PNG embedded as base64, no
scripts, no external files, so it can be mailed, printed or opened offline. The markup is also
well-formed XML (self-closed void elements, only numeric or XML entities), which the tests check.
No Streamlit here.
"""
from __future__ import annotations

import datetime as _dt
import html
import io
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from vit_core.analysis import explain

from vit_core.io import loading
from vit_core.render import figures

PAPER = "Dosovitskiy et al. 2020, An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale"

CSS = """
body { font-family: Georgia, 'DejaVu Serif', serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #111; background: #fff; line-height: 1.5; }
h1 { font-size: 2rem; margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 2px solid #c2410c; }
table { border-collapse: collapse; margin: 1rem 0; } td, th { border: 1px solid #bbb; padding: 0.3rem 0.7rem; }
th { background: #f3f3f3; text-align: left; }
figure { margin: 1rem 0; page-break-inside: avoid; break-inside: avoid; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; image-rendering: auto; }
figcaption { font-size: 0.95rem; color: #333; margin-top: 0.4rem; }
.meta { color: #444; } code { font-family: 'DejaVu Sans Mono', monospace; font-size: 0.92em; }
footer { margin-top: 3rem; font-size: 0.85rem; color: #555; border-top: 1px solid #ccc; padding-top: 0.5rem; }
"""


@dataclass
class Step:
    """One section of the handout: a title, some text and its figures (PNG bytes, caption)."""

    key: str
    title: str
    text: str
    figures: list[tuple[bytes, str]] = field(default_factory=list)


def _fig_png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _scale_for(img: np.ndarray, target: int = 448) -> int:
    return max(1, target // max(img.shape[:2]))


def _cls_row(a: explain.Analysis, attn_layer: np.ndarray) -> np.ndarray:
    """Mean over heads of what [CLS] attends to (or, without [CLS], of what all tokens attend to)."""
    rows = attn_layer[:, 0, :] if a.num_prefix_tokens else attn_layer.mean(axis=1)  # (h, T)
    return explain.patch_map(a, rows.mean(axis=0))  # (gh, gw)


def _map_grid(a: explain.Analysis, maps: list[np.ndarray], titles: list[str], suptitle: str) -> bytes:
    """Small multiples: each (gh, gw) map blended onto the image, titled."""
    n = len(maps)
    cols = min(6, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(2.3 * cols, 2.5 * rows))
    for i, (m, t) in enumerate(zip(maps, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(figures.overlay(a.image, m))
        ax.set_title(t, fontsize=11)
        ax.axis("off")
    fig.suptitle(suptitle, fontsize=13)
    return _fig_png(fig)


def _pca_rgb(x: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Top-3 principal components of the rows of x (N, D) as an RGB map (gh, gw, 3) and their share."""
    xc = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(3, vt.shape[0])
    comps = xc @ vt[:k].T  # (N, k)
    rgb = np.zeros((x.shape[0], 3), np.float32)
    for j in range(k):
        rgb[:, j] = figures.normalise(comps[:, j])
    var = (s**2) / max(float((s**2).sum()), 1e-12)
    return (rgb.reshape(*grid, 3) * 255).astype(np.uint8), var[:k]


def _patch_tiles(a: explain.Analysis) -> np.ndarray:
    """The image cut into its patches, (N, P, P, 3) uint8, in reading order."""
    gh, gw = a.grid
    P = a.patch_size
    img = a.image[: gh * P, : gw * P]
    return img.reshape(gh, P, gw, P, 3).transpose(0, 2, 1, 3, 4).reshape(gh * gw, P, P, 3)


def steps(a: explain.Analysis, mf: explain.ModelFigures, class_names: list[str]) -> list[Step]:
    """Every step of the walk-through, with its figures rendered."""
    gh, gw = a.grid
    P, N, T, L, h = a.patch_size, gh * gw, a.num_tokens, a.depth, a.num_heads
    D = a.patch_embed.shape[-1]
    H, W = a.image.shape[:2]
    C = a.image.shape[2]
    n = a.num_prefix_tokens
    out: list[Step] = []

    s = _scale_for(a.image)
    out.append(Step("image", "1. The image, as the model sees it",
                    f"After resizing, cropping and normalising, the model receives a {C} x {H} x {W} array "
                    "(shown here with the normalisation undone).",
                    [(figures.to_png(figures.upscale(a.image, s)), f"Model input, {H} x {W} pixels.")]))

    grid_img = figures.draw_grid(figures.upscale(a.image, s), P * s)
    tiles = _patch_tiles(a)
    k = min(N, 2 * gw if gw <= 12 else gw)
    ts = max(1, 48 // P)
    strip = figures.mosaic(np.stack([figures.upscale(t, ts) for t in tiles[:k]]), cols=k, pad=3)
    out.append(Step("patches", "2. Cut into patches: the image's words",
                    f"The image is cut into a {gh} x {gw} grid of {N} non-overlapping patches of {P} x {P} "
                    f"pixels; each patch is flattened to {C} x {P} x {P} = {C * P * P} numbers. Read left to "
                    "right, top to bottom, the patches form a sequence, like the words of a sentence.",
                    [(figures.to_png(grid_img), f"{N} patches of {P} x {P} pixels."),
                     (figures.to_png(strip), f"The first {k} patches of the sequence, in reading order.")]))

    pcs = (np.clip(mf.filter_pcs, 0, 1) * 255).astype(np.uint8)  # (k, P, P, C)
    if pcs.shape[-1] == 1:
        pcs = np.repeat(pcs, 3, axis=-1)
    pcs = np.stack([figures.upscale(t, max(1, 40 // P)) for t in pcs]) if len(pcs) else pcs
    emb_rgb, var = _pca_rgb(a.patch_embed, a.grid)
    emb_img = np.asarray(Image.fromarray(emb_rgb).resize((W * s, H * s), Image.NEAREST))
    figs3 = []
    if len(pcs):
        figs3.append((figures.to_png(figures.mosaic(pcs, cols=min(7, len(pcs)))),
                      f"The top {len(pcs)} principal components of the {D} learned patch filters "
                      "(compare the paper's Figure 7, left). In a well-trained model they look like smooth colour "
                      "blobs and edge detectors; in an untrained one, like noise."))
    figs3.append((figures.to_png(emb_img),
                   "This image's patch embeddings: the three strongest directions of variation among its "
                   f"{N} vectors, shown as red, green and blue ({', '.join(f'{v:.0%}' for v in var)} of the "
                   "variance). Patches with similar colours here got similar vectors."))
    out.append(Step("embedding", "3. Patch embedding: from pixels to vectors",
                    f"One shared linear map turns each patch ({C * P * P} numbers) into a vector of D = {D}. "
                    "It is a convolution with kernel size = stride = patch size.", figs3))

    sim = figures.map_mosaic(mf.pos_similarity, cols=mf.grid[1], tile=max(24, 640 // max(mf.grid)))
    out.append(Step("positions", "4. Position embeddings",
                    "A learned vector is added to each token so the model knows where a patch came from. "
                    "Tile (i, j) shows how similar the position embedding of patch (i, j) is to all other "
                    "positions (cosine similarity; the paper's Figure 7, centre): nearby patches, and patches "
                    "in the same row or column, end up with similar embeddings in a trained model (the model learns the 2-D "
                    "layout; it is never told).",
                    [(figures.to_png(sim), f"Cosine similarity of position embeddings, {mf.grid[0]} x "
                      f"{mf.grid[1]} tiles (yellow = similar).")]))

    who = "[CLS]" if n else "the average token"
    cls_maps = [_cls_row(a, a.attn[layer].astype(np.float32)) for layer in range(L)]
    out.append(Step("attention", "5. Self-attention, layer by layer",
                    f"In each of the {L} layers, each of the {h} heads lets every one of the {T} tokens look at "
                    f"every other token ({T}^2 = {T * T:,} scores per head). Below: where {who} looks in each "
                    "layer, averaged over the heads.",
                    [(_map_grid(a, cls_maps, [f"layer {i + 1}" for i in range(L)],
                                f"Attention of {who} to the patches (mean over {h} heads)"),
                      "Bright = attended. Each map has its own colour scale.")]))

    roll = [explain.patch_map(a, a.rollout[layer][0]) for layer in range(L)]
    out.append(Step("rollout", "6. Attention rollout",
                    "Attention of one layer ignores what earlier layers already mixed. Rollout (Abnar and "
                    "Zuidema, 2020) multiplies the layers' attention (each with the residual connection added) "
                    "to estimate how much each patch flowed into the first token after each layer.",
                    [(_map_grid(a, roll, [f"after layer {i + 1}" for i in range(L)], "Attention rollout"),
                      "Rollout after each layer; the last map summarises the whole network."),
                     (figures.to_png(figures.overlay(figures.upscale(a.image, s), roll[-1])),
                      f"Rollout after all {L} layers, on the image.")]))

    if a.probs.size:
        top = np.argsort(a.probs)[::-1][:5]
        labels = [loading.class_name(class_names, int(i)) for i in top]
        fig = Figure(figsize=(7, 0.6 + 0.55 * len(top)))
        ax = fig.add_subplot(111)
        ax.barh(labels[::-1], a.probs[top][::-1], color="#c2410c")
        for y, v in enumerate(a.probs[top][::-1]):
            ax.text(v, y, f" {v:.1%}", va="center", fontsize=11)
        ax.set_xlim(0, max(float(a.probs[top[0]]) * 1.25, 1e-6))
        ax.set_xlabel("probability")
        ax.spines[["top", "right"]].set_visible(False)
        out.append(Step("prediction", "7. Prediction",
                        f"The final [CLS] vector goes through a LayerNorm and one linear layer to "
                        f"{a.probs.size} class scores; a softmax turns them into probabilities. The model says "
                        f"<b>{html.escape(labels[0])}</b> ({a.probs[top[0]]:.1%}).",
                        [(_fig_png(fig), "Top-5 classes.")]))

        fig = Figure(figsize=(7.5, 3.8))
        ax = fig.add_subplot(111)
        layers = np.arange(1, L + 1)
        for i, lab in zip(top, labels):
            ax.plot(layers, a.lens[:, i], marker="o", label=lab)
        ax.set_xlabel("layer")
        ax.set_ylabel("probability")
        ax.set_ylim(0, 1)
        ax.set_xticks(layers)
        ax.legend(fontsize=9, loc="upper left")
        ax.grid(alpha=0.3)
        out.append(Step("lens", "8. Logit lens: when does the model decide?",
                        "Applying the final LayerNorm and the classification head to the first token after every "
                        "layer shows what the model would answer if it stopped there. The last point is the "
                        "real prediction.",
                        [(_fig_png(fig), "Probability of the final top-5 classes, read out after each layer.")]))
    else:
        out.append(Step("prediction", "7. Prediction",
                        "This model has no classification head (a feature extractor): it outputs a vector, "
                        "not classes. Its attention maps above are still meaningful.",
                        [(figures.to_png(figures.overlay(figures.upscale(a.image, s), roll[-1])),
                          "What the output vector summarises (rollout after the last layer).")]))
    return out


def build_handout(a: explain.Analysis, mf: explain.ModelFigures, class_names: list[str], *,
                  model_description: str = "", image_name: str = "", app_url: str = "",
                  created: _dt.datetime | None = None) -> str:
    """The whole handout as one HTML string (UTF-8, no external resources)."""
    created = created or _dt.datetime.now()
    gh, gw = a.grid
    D = a.patch_embed.shape[-1]
    H, W = a.image.shape[:2]
    esc = html.escape
    rows = [("Image", f"{a.image.shape[2]} x {H} x {W}" + (f" ({image_name})" if image_name else "")),
            ("Patches", f"{gh} x {gw} = {gh * gw} of {a.patch_size} x {a.patch_size} pixels"),
            ("Tokens", f"{a.num_tokens} ({a.num_prefix_tokens} extra + {gh * gw} patches), width D = {D}"),
            ("Encoder", f"{a.depth} layers, {a.num_heads} heads of {D // max(a.num_heads, 1)} dimensions"),
            ("Attention", f"{a.num_tokens}^2 = {a.num_tokens ** 2:,} scores per head and layer")]
    parts = ['<!DOCTYPE html>', '<html lang="en">', "<head>", '<meta charset="utf-8" />',
             '<meta name="viewport" content="width=device-width, initial-scale=1" />',
             f"<title>ViT handout: {esc(image_name or 'your image')}</title>", f"<style>{CSS}</style>",
             "</head>", "<body>", "<h1>An image is worth 16x16 words</h1>",
             f'<p class="meta">How a Vision Transformer reads {esc(image_name or "this image")}, step by step. '
             f"Model: {esc((model_description or 'a Vision Transformer').rstrip('.'))}. Every figure was computed from this "
             f"model and this image on {created:%Y-%m-%d %H:%M}.</p>",
             "<table>"] + [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows] + ["</table>"]
    for st_ in steps(a, mf, class_names):
        parts.append(f'<section id="{st_.key}">')
        parts.append(f"<h2>{esc(st_.title)}</h2>")
        parts.append(f"<p>{st_.text}</p>")  # step texts are written here, not user input (escaped names)
        for png, caption in st_.figures:
            parts.append(f'<figure><img src="{figures.data_uri(png)}" alt="{esc(caption)}" />'
                         f"<figcaption>{esc(caption)}</figcaption></figure>")
        parts.append("</section>")
    link = f' Open the live app: <a href="{esc(app_url)}">{esc(app_url)}</a>.' if app_url else ""
    parts += [f"<footer>Made with the ViT Explainer. Paper: {esc(PAPER)} "
              '(<a href="https://arxiv.org/abs/2010.11929">arXiv:2010.11929</a>).' + link + "</footer>",
              "</body>", "</html>"]
    return "\n".join(parts)
