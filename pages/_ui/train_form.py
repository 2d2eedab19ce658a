"""The training page's form: data, model and training settings, drawn in order; words and widgets only.

``form(busy)`` draws sections 1-3 and returns what was chosen as ``plans.Choices`` (the training
layer turns it into a config and a plan); nothing here computes a recipe.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import streamlit as st

from pages._ui.cache import dataset_state, model_cost
from pages._ui.widgets import row
from vit_core.data import vision, zipdata
from vit_core.model import ViTConfig
from vit_core.training import jobs, plans
from vit_core.training.config import LAYOUTS
from vit_core.training.loop import pick_device

DATA = {
    "shapes": "Shapes (generated here)",
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "zip": "Your images (zip)",
}
SHAPES_SETS = (0, 1000, 10_000, 20_000)  # 0 = fresh images every step; the preset's own size is added
LRS = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2]
BATCHES = [8, 16, 32, 64, 128, 256, 512]


@dataclass
class Form:
    choices: plans.Choices
    ok: bool  # the data can be used now
    label: str  # the data, in words (recorded with a saved model)
    zip_data: zipdata.ZipImages | None = None


def upload_zip(busy: bool) -> tuple[bool, int, int | None, zipdata.ZipImages | None]:
    """The *Your images* choice: upload, read once per file, summarise with a few samples.

    Returns:
        (data usable, number of classes, number of images, the images): (False, 10, None, None)
        while nothing usable is uploaded.
    """
    up = st.file_uploader("A zip with one folder of images per class", type=["zip"], key="tr_zip_upload",
                          help=zipdata.LIMITS_HELP, disabled=busy)
    st.caption(zipdata.LIMITS_HELP + f" Unreadable files are skipped and listed; {plans.ZIP_VAL_FRACTION:.0%} "
               "of each class is held out for validation.")
    if up is None:
        return False, 10, None, None
    raw = up.getvalue()
    key = (up.file_id, len(raw))
    held = st.session_state.get("tr_zip")
    if held is None or held[0] != key:
        try:
            with st.spinner("Reading the zip…"):
                d = zipdata.load_zip(raw, size=64)
            st.session_state.tr_zip = (key, d, None)
        except zipdata.ZipDataError as err:
            st.session_state.tr_zip = (key, None, str(err))
    _, zip_data, zip_err = st.session_state.tr_zip
    if zip_data is None:
        st.error(zip_err)
        return False, 10, None, None
    counts = zip_data.counts
    n = sum(counts.values())
    st.success(f"{n} images in {len(zip_data.classes)} classes: " + ", ".join(f"{c} ({k})" for c, k in counts.items()))
    if min(counts.values()) < 5:
        st.warning("Some classes have fewer than 5 images: the validation accuracy will be very noisy.")
    if zip_data.skipped:
        with st.expander(f"{len(zip_data.skipped)} file(s) skipped"):
            st.table({"file": [f for f, _ in zip_data.skipped], "why": [r for _, r in zip_data.skipped]})
    idx = np.linspace(0, n - 1, min(8, n)).astype(int)
    st.image([zip_data.images[i].permute(1, 2, 0).numpy() for i in idx],
             caption=[zip_data.classes[int(zip_data.labels[i])] for i in idx], width=72)
    return True, len(zip_data.classes), n, zip_data


def _data(busy: bool) -> tuple[plans.Choices, bool, zipdata.ZipImages | None]:
    st.subheader("1 · Data")
    key = st.radio("Data", list(DATA), format_func=DATA.get, horizontal=True, key="tr_data",
                   label_visibility="collapsed", disabled=busy)
    ch, ok, zip_data = plans.Choices(data=key), True, None
    if key == "shapes":
        # The recipe the widgets start from: the chosen layout's (the widget is drawn below).
        base = plans.base_config(st.session_state.get("tr_layout", "quick"))
        c1, c2 = row(2)  # the box as wide as its column was (2 of 5), the words the rest
        sets = sorted({*SHAPES_SETS, base.train_size or 0})
        n = c1.selectbox("Training images", sets, index=sets.index(base.train_size or 0),
                         format_func=lambda k: f"A fixed set of {k:,}" if k else "Fresh images every step (unlimited data)",
                         key="tr_shapes_set", disabled=busy, width=420)
        c2.caption("Ten outline classes (circle, star, heart…) at random positions, sizes, colours and "
                   "backgrounds, rendered on the fly"
                   + (" (small models get an easier variant: larger shapes, no clutter, and faint stripes "
                      "inside each shape at its class's own angle)"
                      if base.data_options.get("texture_frame") == "image" else "")
                   + ". With *fresh images* the model never sees the same picture twice; a fixed set can be "
                   "over-fitted.")
        ch = dataclasses.replace(ch, shapes_set=n)
    elif key in vision.DATASETS:
        spec = vision.DATASETS[key]
        cached, online = dataset_state(key)
        ch = dataclasses.replace(ch, num_classes=len(spec.classes))
        if cached:
            st.caption(f"{spec.title}: {spec.train_images:,} training and 10,000 test images, cached in "
                       f"`{vision.data_root()}`. Classes: {', '.join(spec.classes)}.")
        elif online:
            st.info(f"{spec.title} is not on this machine yet: it will be downloaded when the run starts "
                    f"({spec.size_mb:.0f} MB, progress shown below) into `{vision.data_root()}`.")
        else:
            st.error(vision.offline_message(key))
            ok = False
    else:
        ok, k, n, zip_data = upload_zip(busy)
        ch = dataclasses.replace(ch, num_classes=k, zip_images=n)
    return ch, ok, zip_data


def _model(ch: plans.Choices, busy: bool) -> plans.Choices:
    st.subheader("2 · Model")
    lc, rc = row(2)  # rc's caption is written below, after the layout's widgets: it lands beside the box
    layout = lc.selectbox("Layout", list(LAYOUTS), index=1, format_func=lambda k: LAYOUTS[k][0], key="tr_layout",
                          disabled=busy)
    custom = None
    if layout == "custom":
        c = row(6)
        img = c[0].selectbox("Image size", [32, 48, 64, 96, 128, 224], index=1, key="tr_img", disabled=busy)
        patches = [p for p in range(2, 33) if img % p == 0 and img // p >= 2]
        patch = c[1].selectbox("Patch size", patches, index=patches.index(8) if 8 in patches else 0,
                               key="tr_patch", disabled=busy)
        width = c[2].selectbox("Width D", [32, 48, 64, 96, 128, 192, 256, 384, 512, 768], index=2, key="tr_width",
                               disabled=busy)
        heads_opts = [h for h in (1, 2, 3, 4, 6, 8, 12, 16) if width % h == 0]
        heads = c[3].selectbox("Heads", heads_opts, index=heads_opts.index(4) if 4 in heads_opts else 0,
                               key="tr_heads", disabled=busy)
        depth = c[4].slider("Depth", 1, 12, 3, key="tr_depth", disabled=busy)
        ratio = c[5].selectbox("MLP ratio", [1.0, 2.0, 3.0, 4.0], index=1, key="tr_ratio", disabled=busy)
        custom = ViTConfig(img_size=img, patch_size=patch, embed_dim=width, depth=depth, num_heads=heads,
                           mlp_ratio=ratio)
    ch = dataclasses.replace(ch, layout=layout, custom=custom)
    vit = plans.architecture(ch)
    cost = model_cost(vit.to_dict())
    gh = vit.img_size // vit.patch_size
    rc.caption(f"{vit.img_size} px images cut into {gh}×{gh} = {gh * gh} patches of {vit.patch_size}×"
               f"{vit.patch_size} px, +1 [CLS] token = **{cost['tokens']} tokens** of width {vit.embed_dim}; "
               f"{vit.depth} blocks of {vit.num_heads} heads, MLP {vit.mlp_ratio:g}× wide.")
    gf = lambda g: f"{g * 1e3:,.1f} M" if g < 1 else f"{g:.2f} G"  # noqa: E731
    m = row(5)
    m[0].metric("Parameters", f"{cost['vit_params']:,}")
    m[1].metric("FLOPs / image", gf(cost["vit_gflops"]))
    m[2].metric("Training FLOPs", f"≈ {3 * cost['vit_gflops'] * 1e3:,.0f} M" if cost["vit_gflops"] < 0.3
                else f"≈ {3 * cost['vit_gflops']:.2f} G",
                help="Per image and step: forward + backward ≈ 3 × the forward FLOPs.")
    w = cost["cnn_width"]
    m[3].metric("CNN parameters", f"{cost['cnn_params']:,}",
                help=f"The CNN it is compared with: ResNet-style, widths {w}/{2 * w}/{4 * w}")
    m[4].metric("CNN FLOPs / image", gf(cost["cnn_gflops"]))
    return ch


def _training(ch: plans.Choices, busy: bool) -> plans.Choices:
    st.subheader("3 · Training")
    base = plans.base_config(ch.layout)
    cuda = pick_device("auto").type == "cuda"
    c = row(5)
    lr = c[0].select_slider("Peak learning rate (AdamW)", LRS, value=base.lr, key="tr_lr", disabled=busy,
                            format_func=lambda v: f"{v:g}")
    wd = c[1].select_slider("Weight decay", [0.0, 0.01, 0.05, 0.1, 0.3], value=0.05, key="tr_wd", disabled=busy)
    warm = c[2].number_input("Warm-up steps", 0, 5000, base.warmup_steps, 10, key="tr_warm", disabled=busy,
                             help="Linear warm-up, then cosine decay to 1% of the peak by the end of the budget.")
    batch = c[3].selectbox("Batch size", BATCHES, index=BATCHES.index(base.batch_size), key="tr_batch",
                           disabled=busy)
    evals = c[4].number_input("Eval every (steps)", 5, 5000, 100 if cuda else 25, 5, key="tr_eval", disabled=busy,
                              help="Validation accuracy and a 'watch it learn' snapshot each time.")
    ch = dataclasses.replace(ch, lr=lr, weight_decay=wd, warmup_steps=int(warm), batch_size=int(batch),
                             eval_every=int(evals))
    # One row, as columns 1:2:2 drew it: the budget's kind (narrow), its amount, then the switches,
    # stacked. A lone slider needs no box of its own; the epochs' caption goes under their input.
    c = row(3)
    kind = c[0].radio("Budget", ["Seconds", "Epochs"], key="tr_budget", disabled=busy)
    if kind == "Seconds":
        ch = dataclasses.replace(ch, seconds=c[1].slider("Time budget (s)", 5, 900, 60, 5, key="tr_seconds",
                                                         disabled=busy), epochs=None)
    else:
        mid = c[1].container()
        ch = dataclasses.replace(ch, seconds=None, epochs=mid.number_input("Epochs", 1, 200, 5, key="tr_epochs",
                                                                           disabled=busy))
        fresh = ch.data == "shapes" and not ch.shapes_set
        mid.caption(f"= {plans.steps_for(ch):,} steps of {batch}"
                    + (f" (fresh data: an epoch is counted as {plans.epoch_images(ch):,} images)" if fresh else ""))
    right = c[2].container()
    augment = right.toggle("Augmentation", value=plans.default_augment(ch.data, ch.layout), key="tr_aug",
                           disabled=busy, help="Random shifts and horizontal flips. Fine for Shapes, CIFAR-10 and "
                                               "clothes; digits are not mirror-symmetric.")
    use_compile = right.toggle("torch.compile", value=False, key="tr_compile", disabled=busy or not cuda,
                               help="Compile the training forward pass (CUDA only): faster steps after a "
                                    "compilation pause at the start.")
    right.caption(f"Device: **{jobs.device_label()}**")
    return dataclasses.replace(ch, augment=augment, compile=use_compile)


def form(busy: bool) -> Form:
    """Sections 1-3 of the page, widgets disabled while this session's run is ``busy``."""
    ch, ok, zip_data = _data(busy)
    ch = _training(_model(ch, busy), busy)
    label = DATA[ch.data] if ch.data != "zip" else (f"your images ({len(zip_data.classes)} classes)" if zip_data
                                                    else DATA["zip"])
    return Form(ch, ok, label, zip_data)
