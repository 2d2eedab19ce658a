"""Train a ViT live: pick data and a model, train it in the background, watch it learn, compare with a CNN."""
from __future__ import annotations

import dataclasses
import math

import streamlit as st

from pages._common import USER_MODELS, code_box, header, sidebar
from pages._train_view import (curves, dataset_state, metrics, model_cost, result, session_alive, session_id,
                               status_line, upload_zip, watch_it_learn)
from vit_core import cnn
from vit_core.training import jobs
from vit_core.training import runs
from vit_core.training import loop as T
from vit_core.data import vision
from vit_core.model import ViTConfig
from vit_core.training.config import PRESETS, get_preset

DATA = {
    "shapes": "Shapes (generated here)",
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "zip": "Your images (zip)",
}
_Q, _D = PRESETS["shapes-quick"].vit, PRESETS["shapes-demo"].vit
LAYOUTS = {
    "nano": ("Nano · 32 px, 4 px patches (8×8)", ViTConfig(img_size=32, patch_size=4, embed_dim=64, depth=4,
                                                         num_heads=4, mlp_ratio=2.0)),
    "quick": ("Quick · 48 px, 8 px patches (6×6)", _Q),
    "tiny": ("Tiny · 64 px, 8 px patches (8×8)", ViTConfig(img_size=64, patch_size=8, embed_dim=128, depth=4,
                                                         num_heads=4, mlp_ratio=2.0)),
    "bundled": ("Bundled model's layout · 224 px, 16 px patches (14×14)", _D),
    "custom": ("Custom", None),
}
SHAPES_SETS = (0, 1000, 10_000, 20_000)  # 0 = fresh images every step; the preset's own size is added
LRS = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2]

ctx = sidebar()
header("Train a ViT live, and watch it learn",
       "Everything on the other pages was computed with a model trained beforehand. Here you train one "
       "**from scratch**, right now: pick the data and the model, press *Train*, and watch the loss fall, "
       "the accuracy rise, the position embeddings discover the 2-D grid and the attention find the "
       "object. One more click trains a **CNN of the same size** on the same data and budget, to test the "
       "paper's central claim: without a CNN's built-in locality, a ViT needs **more data** to catch up "
       "(Dosovitskiy et al., 2020, Sec. 4.2 and Fig. 3-4).", ctx)

mgr = jobs.manager(alive=session_alive)
runs.warm_up()
sid = session_id()
mgr.heartbeat(sid)
job = mgr.get(sid)
busy = job is not None and job.active


# --- 1. data --------------------------------------------------------------------------------------
st.subheader("1 · Data")
data_key = st.radio("Data", list(DATA), format_func=DATA.get, horizontal=True, key="tr_data",
                    label_visibility="collapsed", disabled=busy)
data_ok, num_classes, full_size, zip_data = True, 10, None, None
shapes_set = 0
# The recipe the widgets start from: the bundled model's for its layout, else the quick one.
base = PRESETS["shapes-demo"] if st.session_state.get("tr_layout") == "bundled" else PRESETS["shapes-quick"]
if data_key == "shapes":
    c1, c2 = st.columns([2, 3])
    sets = sorted({*SHAPES_SETS, base.train_size or 0})
    shapes_set = c1.selectbox("Training images", sets, index=sets.index(base.train_size or 0),
                              format_func=lambda n: f"A fixed set of {n:,}" if n else
                              "Fresh images every step (unlimited data)", key="tr_shapes_set", disabled=busy)
    c2.caption("Ten outline classes (circle, star, heart…) at random positions, sizes, colours and "
               "backgrounds, rendered on the fly"
               + (" (small models get an easier variant: larger shapes, no clutter, and faint stripes "
                  "inside each shape at its class's own angle)"
                  if base.data_options.get("texture_frame") == "image" else "")
               + ". With *fresh images* the model never sees the same picture twice; a fixed set can be "
               "over-fitted.")
    full_size = shapes_set or base.train_size or 4000
elif data_key in vision.DATASETS:
    spec = vision.DATASETS[data_key]
    cached, online = dataset_state(data_key)
    num_classes = len(spec.classes)
    full_size = 60_000 if "mnist" in data_key else 50_000
    if cached:
        st.caption(f"{spec.title}: {full_size:,} training and 10,000 test images, cached in `{vision.data_root()}`. "
                   f"Classes: {', '.join(spec.classes)}.")
    elif online:
        st.info(f"{spec.title} is not on this machine yet: it will be downloaded when the run starts "
                f"({spec.size_mb:.0f} MB, progress shown below) into `{vision.data_root()}`.")
    else:
        st.error(vision.offline_message(data_key))
        data_ok = False
else:
    data_ok, num_classes, full_size, zip_data = upload_zip(busy)

# --- 2. model -------------------------------------------------------------------------------------
st.subheader("2 · Model")
lc, rc_ = st.columns([3, 2])
layout = lc.selectbox("Layout", list(LAYOUTS), index=1, format_func=lambda k: LAYOUTS[k][0], key="tr_layout",
                      disabled=busy)
if layout == "custom":
    c = st.columns(6)
    img = c[0].selectbox("Image size", [32, 48, 64, 96, 128, 224], index=1, key="tr_img", disabled=busy)
    patches = [p for p in range(2, 33) if img % p == 0 and img // p >= 2]
    patch = c[1].selectbox("Patch size", patches, index=patches.index(8) if 8 in patches else 0, key="tr_patch",
                           disabled=busy)
    width = c[2].selectbox("Width D", [32, 48, 64, 96, 128, 192, 256, 384, 512, 768], index=2, key="tr_width",
                           disabled=busy)
    heads_opts = [h for h in (1, 2, 3, 4, 6, 8, 12, 16) if width % h == 0]
    heads = c[3].selectbox("Heads", heads_opts, index=heads_opts.index(4) if 4 in heads_opts else 0,
                           key="tr_heads", disabled=busy)
    depth = c[4].slider("Depth", 1, 12, 3, key="tr_depth", disabled=busy)
    ratio = c[5].selectbox("MLP ratio", [1.0, 2.0, 3.0, 4.0], index=1, key="tr_ratio", disabled=busy)
    vit = ViTConfig(img_size=img, patch_size=patch, embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=ratio)
else:
    vit = LAYOUTS[layout][1]
vit = dataclasses.replace(vit, num_classes=num_classes)
cost = model_cost(vit.to_dict())
gh = vit.img_size // vit.patch_size
rc_.caption(f"{vit.img_size} px images cut into {gh}×{gh} = {gh * gh} patches of {vit.patch_size}×{vit.patch_size} "
            f"px, +1 [CLS] token = **{cost['tokens']} tokens** of width {vit.embed_dim}; {vit.depth} blocks of "
            f"{vit.num_heads} heads, MLP {vit.mlp_ratio:g}× wide.")
m = st.columns(5)
m[0].metric("Parameters", f"{cost['vit_params']:,}")
m[1].metric("FLOPs / image", f"{cost['vit_gflops'] * 1e3:,.1f} M" if cost["vit_gflops"] < 1
            else f"{cost['vit_gflops']:.2f} G")
m[2].metric("Training FLOPs", f"≈ {3 * cost['vit_gflops'] * 1e3:,.0f} M" if cost["vit_gflops"] < 0.3
            else f"≈ {3 * cost['vit_gflops']:.2f} G", help="Per image and step: forward + backward ≈ 3 × the forward FLOPs.")
m[3].metric("CNN parameters", f"{cost['cnn_params']:,}",
            help=f"The CNN it is compared with: ResNet-style, widths {cost['cnn_width']}/{2 * cost['cnn_width']}/{4 * cost['cnn_width']}")
m[4].metric("CNN FLOPs / image", f"{cost['cnn_gflops'] * 1e3:,.1f} M" if cost["cnn_gflops"] < 1
            else f"{cost['cnn_gflops']:.2f} G")

# --- 3. training ----------------------------------------------------------------------------------
st.subheader("3 · Training")
base = PRESETS["shapes-demo"] if layout == "bundled" else PRESETS["shapes-quick"]
batches = [8, 16, 32, 64, 128, 256, 512]
cuda = T.pick_device("auto").type == "cuda"
c = st.columns(5)
lr = c[0].select_slider("Peak learning rate (AdamW)", LRS, value=base.lr, key="tr_lr", disabled=busy,
                        format_func=lambda v: f"{v:g}")
wd = c[1].select_slider("Weight decay", [0.0, 0.01, 0.05, 0.1, 0.3], value=0.05, key="tr_wd", disabled=busy)
warm = c[2].number_input("Warm-up steps", 0, 5000, base.warmup_steps, 10, key="tr_warm", disabled=busy,
                         help="Linear warm-up, then cosine decay to 1% of the peak by the end of the budget.")
batch = c[3].selectbox("Batch size", batches, index=batches.index(base.batch_size), key="tr_batch", disabled=busy)
evals = c[4].number_input("Eval every (steps)", 5, 5000, 100 if cuda else 25, 5, key="tr_eval", disabled=busy,
                          help="Validation accuracy and a 'watch it learn' snapshot each time.")
c = st.columns([1, 2, 2])
budget_kind = c[0].radio("Budget", ["Seconds", "Epochs"], key="tr_budget", disabled=busy)
epoch_n = int(round(full_size * 0.8)) if data_key == "zip" and full_size else full_size
if budget_kind == "Seconds":
    seconds = c[1].slider("Time budget (s)", 5, 900, 60, 5, key="tr_seconds", disabled=busy)
    max_steps = None
else:
    epochs = c[1].number_input("Epochs", 1, 200, 5, key="tr_epochs", disabled=busy)
    seconds = None
    max_steps = max(1, math.ceil(epochs * (epoch_n or 1) / batch))
    c[1].caption(f"= {max_steps:,} steps of {batch}" + ("" if data_key != "shapes" or shapes_set
                                                         else f" (fresh data: an epoch is counted as {epoch_n:,} images)"))
aug_default = base.augment and data_key != "mnist"
augment = c[2].toggle("Augmentation", value=aug_default, key="tr_aug", disabled=busy,
                      help="Random shifts and horizontal flips. Fine for Shapes, CIFAR-10 and clothes; digits "
                           "are not mirror-symmetric.")
use_compile = c[2].toggle("torch.compile", value=False, key="tr_compile", disabled=busy or not cuda,
                          help="Compile the training forward pass (CUDA only): faster steps after a "
                               "compilation pause at the start.")
c[2].caption(f"Device: **{jobs.device_label()}**")

cfg = get_preset("shapes-quick" if layout != "bundled" else "shapes-demo", vit=vit, img_size=vit.img_size,
                 dataset=data_key if data_key != "zip" else "zip", lr=lr, weight_decay=wd, warmup_steps=int(warm),
                 batch_size=int(batch), max_seconds=seconds, max_steps=max_steps,
                 train_size=(shapes_set or None) if data_key == "shapes" else None,
                 val_size=500 if data_key != "zip" else 10_000, augment=augment,
                 shift_px=max(2, vit.img_size // 12) if layout != "bundled" else base.shift_px,
                 eval_every=int(evals), snapshot_every=int(evals), num_threads=runs.default_threads())


def data_factory():
    """(cfg, progress) -> DataSource for the chosen data, or None for Shapes (the trainer's own)."""
    if data_key == "shapes":
        return None
    if data_key == "zip":
        tr, va = zip_data.split(0.2, seed=0)
        return lambda cfg, progress: vision.tensor_source(cfg, tr.images, tr.labels, va.images, va.labels,
                                                          zip_data.classes)
    return lambda cfg, progress: vision.data_source(cfg, data_key, progress)


def start(kind: str) -> None:
    label = DATA[data_key] if data_key != "zip" else f"your images ({len(zip_data.classes)} classes)"
    common = dict(data=data_factory(), data_label=label, save_dir=USER_MODELS,
                  save_name=f"{data_key}-{layout}", extra_meta={"layout": layout}, compile=use_compile)
    if kind == "train":
        plan = runs.plan_train(cfg, **common)
    elif kind == "compare":
        plan = runs.plan_compare(cfg, **common)
    else:
        full = full_size
        if data_key == "zip":
            full = int(round(full * 0.8))
        plan = runs.plan_data_size(dataclasses.replace(cfg, vit=cfg.vit, train_size=full), full, **common)
    try:
        mgr.submit(sid, plan)
    except jobs.JobBusy:
        pass  # a double click: the first one started it


row = st.container(horizontal=True, vertical_alignment="center")
b = [row] * 4
can = data_ok and not busy
clicked = None
if b[0].button("Train the ViT", type="primary", key="tr_go", disabled=not can, icon=":material/play_arrow:"):
    clicked = "train"
if b[1].button("ViT vs CNN", key="tr_cmp", disabled=not can, icon=":material/compare_arrows:",
               help="The ViT, then a CNN of similar parameter count on the same data, each for half the budget."):
    clicked = "compare"
if b[2].button("Data size: 10% vs 100%", key="tr_size", disabled=not can, icon=":material/database:",
               help=f"ViT and CNN on 10% and on 100% of a fixed training set ({full_size or 0:,} images), "
                    "each for a quarter of the budget: which one suffers more from less data? Give it a few "
                    "minutes on a CPU: four runs of a few seconds only measure noise."):
    clicked = "data-size"
if b[3].button("Stop", key="tr_stop", disabled=not busy, icon=":material/stop:"):
    mgr.stop(sid)
    st.rerun()
if clicked:
    start(clicked)
    st.rerun()  # redraw the buttons and start the live view's timer
job = mgr.get(sid)
busy = job is not None and job.active
if busy:
    st.session_state.tr_was_active = True
    st.caption("Training runs in the background: you can visit other pages and come back. Closing the "
                 "tab stops it.")


# --- live view ------------------------------------------------------------------------------------
def live() -> None:
    mgr.heartbeat(sid)
    job = mgr.get(sid)
    if job is None:
        st.info("No run yet. Press **Train the ViT**: with the defaults it takes a minute on a laptop CPU.",
                icon=":material/info:")
        return
    status_line(job, mgr)
    metrics(job)
    if any(x.steps for x in job.logs):
        st.plotly_chart(curves(job), key="tr_curves")
    watch_it_learn(job)
    if not job.active and st.session_state.get("tr_was_active"):
        st.session_state.tr_was_active = False
        st.rerun(scope="app")  # the run ended: stop the timer, show the final state everywhere


st.subheader("4 · Live view")
st.fragment(run_every=1.0 if busy else None)(live)()
if job is not None and not job.active:
    result(job)  # outside the fragment: shown once the run has ended and the whole page has rerun

code_box(T._train, T.lr_at, cnn.SmallCNN, jobs.JobManager.check)
