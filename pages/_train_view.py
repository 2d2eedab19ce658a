"""The live-training page's helpers and drawing: the zip upload, the live view, the result.

Not a page itself (a leading underscore keeps it out of navigation); ``pages/train.py`` calls these
in order, so the page still reads top to bottom.
"""
from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots
from streamlit.runtime.scriptrunner import get_script_run_ctx

from pages._common import ROOT, USER_MODELS
from vit_core import cnn
from vit_core.render import drawing
from vit_core.analysis import embeddings
from vit_core.render import figures
from vit_core.training import jobs
from vit_core.training import runs
from vit_core.data import vision, zipdata
from vit_core.model import ViTConfig

COLORS = {"ViT": "#c2410c", "CNN": "#1d4ed8"}
MAX_DOWNLOAD_MB = 200


def session_alive(session_id: str) -> bool | None:
    """True/False when this Streamlit server knows the session; None when it cannot say (AppTest)."""
    try:
        from streamlit.runtime import Runtime

        rt = Runtime._instance
        if type(rt) is not Runtime:  # none, or AppTest's mock
            return None
        return rt.is_active_session(session_id) is True
    except Exception:
        return None


def session_id() -> str:
    """This browser session's id (Streamlit's own, so the watchdog can ask whether it is still connected)."""
    if "_train_sid" not in st.session_state:
        rc = get_script_run_ctx()
        st.session_state._train_sid = rc.session_id if rc is not None else uuid.uuid4().hex
    return st.session_state._train_sid


# --- 1. data --------------------------------------------------------------------------------------
@st.cache_data(ttl=30, show_spinner=False)
def dataset_state(name: str) -> tuple[bool, bool]:
    """(cached here, downloadable now), decided in about a second."""
    if vision.is_cached(name):
        return True, True
    return False, vision.host_reachable(vision.DATASETS[name].mirrors[0])


@st.cache_data(show_spinner=False)
def model_cost(vit: dict) -> dict:
    return cnn.model_cost(ViTConfig.from_dict(vit))


def upload_zip(busy: bool) -> tuple[bool, int, int | None, zipdata.ZipImages | None]:
    """The *Your images* choice: upload, read once per file, summarise with a few samples.

    Returns:
        (data usable, number of classes, number of images, the images): the page's defaults
        (False, 10, None, None) while nothing usable is uploaded.
    """
    up = st.file_uploader("A zip with one folder of images per class", type=["zip"], key="tr_zip_upload",
                          help=zipdata.LIMITS_HELP, disabled=busy)
    st.caption(zipdata.LIMITS_HELP + " Unreadable files are skipped and listed; 20% of each class is held "
               "out for validation.")
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
    num_classes = len(zip_data.classes)
    full_size = sum(counts.values())
    st.success(f"{full_size} images in {num_classes} classes: "
               + ", ".join(f"{c} ({n})" for c, n in counts.items()))
    if min(counts.values()) < 5:
        st.warning("Some classes have fewer than 5 images: the validation accuracy will be very noisy.")
    if zip_data.skipped:
        with st.expander(f"{len(zip_data.skipped)} file(s) skipped"):
            st.table({"file": [n for n, _ in zip_data.skipped], "why": [r for _, r in zip_data.skipped]})
    idx = np.linspace(0, full_size - 1, min(8, full_size)).astype(int)
    st.image([zip_data.images[i].permute(1, 2, 0).numpy() for i in idx],
             caption=[zip_data.classes[int(zip_data.labels[i])] for i in idx], width=72)
    return True, num_classes, full_size, zip_data


# --- live view ------------------------------------------------------------------------------------
def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def curves(job: runs.Job) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss", "Accuracy"), horizontal_spacing=0.08)
    for i, lg in enumerate(job.logs):
        if not lg.steps:
            continue
        color = COLORS.get(lg.name.split(" ")[0], "#555")
        dash = "dot" if "10%" in lg.name else "solid"
        steps = [s.step for s in lg.steps]
        k = max(1, len(steps) // 400)  # smooth the noisy per-step values: running mean over k steps
        loss = np.convolve([s.loss for s in lg.steps], np.ones(k) / k, mode="valid")
        acc = np.convolve([s.train_acc for s in lg.steps], np.ones(k) / k, mode="valid")
        xs = steps[k - 1:]
        fig.add_trace(go.Scatter(x=xs[::k], y=loss[::k], name=f"{lg.name} loss", line=dict(color=color, dash=dash),
                                 legendgroup=lg.name, showlegend=False), 1, 1)
        fig.add_trace(go.Scatter(x=xs[::k], y=acc[::k], name=f"{lg.name} train", opacity=0.45,
                                 line=dict(color=color, dash=dash, width=1), legendgroup=lg.name), 1, 2)
        if lg.evals:
            fig.add_trace(go.Scatter(x=[e.step for e in lg.evals], y=[e.val_acc for e in lg.evals],
                                     name=f"{lg.name} validation", mode="lines+markers",
                                     line=dict(color=color, dash=dash, width=3), legendgroup=lg.name), 1, 2)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25),
                      uirevision="keep")
    return fig


def status_line(job: runs.Job, mgr: jobs.JobManager) -> None:
    if job.state == "queued":
        pos = mgr.queue_position(job)
        st.info(f"Queued: **{pos}** in line. Runs train one at a time on this machine "
                f"({mgr.running()} running now); yours starts as soon as the one ahead ends.",
                icon=":material/hourglass_top:")
    elif job.state == "running":
        leg = job.logs[job.current].name if 0 <= job.current < len(job.logs) else ""
        what = job.message or "Training"
        st.info(f"{what}{' ' + leg if leg and leg not in what else ''} on {job.device} "
                f"({job.current + 1} of {len(job.plan.legs)})", icon=":material/model_training:")
        if job.progress is not None:
            st.progress(min(max(job.progress, 0.0), 1.0))
    elif job.state == "error":
        st.error(job.error, icon=":material/error:")
    else:
        reason = job.reason or ""
        if reason.startswith("diverged"):
            st.error(f"Training stopped: the loss {reason.split('loss ', 1)[-1]}. A ViT trained from scratch "
                     "is sensitive to the learning rate; the warm-up exists for this reason.", icon=":material/warning:")
        elif reason.startswith("stopped"):
            st.warning(reason[:1].upper() + reason[1:] + ".", icon=":material/stop_circle:")
        else:
            st.success(f"Done ({reason}).", icon=":material/check_circle:")


def metrics(job: runs.Job) -> None:
    lg = job.logs[job.current] if 0 <= job.current < len(job.logs) else None
    last = lg.last if lg else None
    if lg is not None and len(job.plan.legs) > 1:
        st.caption(f"Numbers for **{lg.name}** (run {job.current + 1} of {len(job.plan.legs)}); the curves show all.")
    c = st.columns(6)
    c[0].metric("Step", f"{last.step:,}" if last else "0")
    c[1].metric("Loss", f"{last.loss:.3f}" if last else "–",
                help="Training cross-entropy (label-smoothed); on Shapes the ViT's also includes the "
                     "token-labelling term (each object patch must name the class too), so it starts near 4.6.")
    c[2].metric("Train accuracy", f"{last.train_acc:.0%}" if last else "–")
    c[3].metric("Val accuracy", f"{lg.evals[-1].val_acc:.1%}" if lg and lg.evals else "–")
    c[4].metric("Images / s", f"{last.images_per_s:,.0f}" if last else "–")
    c[5].metric("ETA" if job.active else "Time", _fmt_eta(last.eta_s) if job.active and last
                else (f"{sum(x.seconds for x in job.logs):.0f} s" if last else "–"))


def watch_it_learn(job: runs.Job) -> None:
    lg = next((x for x in job.logs if x.snapshots), None)
    if lg is None:
        return
    snaps = list(lg.snapshots)
    steps = [s.step for s in snaps]
    st.subheader("Watch it learn")
    follow = st.toggle("Follow the newest step", value=True, key="tr_follow") if job.active else False
    cur = st.session_state.get("tr_snap")
    if follow or cur not in steps:
        st.session_state.tr_snap = steps[-1] if (follow or cur is None) else min(steps, key=lambda s: abs(s - cur))
    step = st.select_slider("Training step", steps, key="tr_snap", disabled=len(steps) < 2,
                            help="Snapshots are taken at every evaluation; slide back in time.")
    snap = snaps[steps.index(step)]
    acc = next((e.val_acc for e in lg.evals if e.step == step), None)
    left, right = st.columns(2)
    with left:
        scale = max(1, 288 // snap.image.shape[0])
        over = figures.overlay(figures.upscale(snap.image, scale), snap.rollout, alpha=0.55)
        st.image(np.concatenate([figures.upscale(snap.image, scale), over], axis=1), width="stretch",
                 caption=f"Attention rollout on a fixed validation image at step {step}"
                         + (f" (validation accuracy {acc:.0%})" if acc is not None else "")
                         + ": where [CLS] gathers information from.")
    with right:
        mosaic, _ = drawing.similarity_mosaic(snap.pos_similarity, tile=40 if snap.pos_similarity.shape[0] <= 64 else 24)
        st.image(mosaic, width="stretch",
                 caption="Position embeddings: tile i shows how similar position i is to every other position "
                         "(red = similar). They start as noise; training can discover rows, columns and "
                         "neighbourhoods (paper Fig. 7, centre).")
        nf = embeddings.neighbour_vs_far(snap.pos_similarity)
        if not np.isnan(nf["far"]):
            gap = nf["near"] - nf["far"]
            verdict = ("a clear 2-D map" if gap >= 0.2 else "some 2-D order" if gap >= 0.05 else
                       "no 2-D order yet: position embeddings organise slowly, over minutes rather than "
                       "seconds; the classifier can succeed without them")
            st.markdown(f"Grid neighbours vs positions 5+ cells apart: cosine **{nf['near']:.2f}** vs "
                        f"**{nf['far']:.2f}**, a gap of **{gap:+.2f}** at step {step}: {verdict}. "
                        "(The bundled model's gap, after an hour of training: see its model card.)")


def model_zip(path: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, path.name)
        zf.write(path.with_suffix(".json"), path.with_suffix(".json").name)
    return buf.getvalue()


def _open_in_explainer(spec: str) -> None:
    st.session_state.model = spec
    st.session_state.tr_open = True


def result(job: runs.Job) -> None:
    if job.active:
        return
    vit_logs = [x for x in job.logs if x.model == "vit"]
    cnn_logs = [x for x in job.logs if x.model == "cnn"]
    if job.plan.kind == "compare" and vit_logs and cnn_logs and cnn_logs[0].steps:
        v, c = vit_logs[0], cnn_logs[0]
        gap = v.val_acc - c.val_acc
        verdict = ("a tie" if abs(gap) < 0.01 else f"the **{'ViT' if gap > 0 else 'CNN'}** wins this one by "
                   f"{abs(gap) * 100:.1f} points")
        st.markdown(f"**Same data, same budget, similar size:** the ViT ({v.params:,} parameters) reached "
                    f"**{v.val_acc:.1%}** in {v.steps[-1].step:,} steps, the CNN ({c.params:,} parameters) "
                    f"**{c.val_acc:.1%}** in {c.steps[-1].step:,} steps: {verdict}. "
                    "The CNN's convolutions assume that nearby pixels belong together and that a pattern means "
                    "the same thing anywhere; the ViT has to learn both from the data.")
    if job.plan.kind == "data-size" and len(job.logs) == 4 and all(x.reason for x in job.logs):
        acc = {x.name: x.val_acc for x in job.logs}
        names = [x.name for x in job.logs]
        fig = go.Figure()
        for mname in ("ViT", "CNN"):
            xs = [n.split(" · ")[1] for n in names if n.startswith(mname)]
            fig.add_trace(go.Bar(x=xs, y=[acc[f"{mname} · {x}"] for x in xs], name=mname,
                                 marker_color=COLORS[mname], text=[f"{acc[f'{mname} · {x}']:.0%}" for x in xs]))
        fig.update_layout(height=280, yaxis=dict(range=[0, 1], title="validation accuracy"),
                          margin=dict(l=10, r=10, t=30, b=10), title="Validation accuracy by training-set size")
        st.plotly_chart(fig, key="tr_datasize")
        v_drop = acc[names[2]] - acc[names[0]]
        c_drop = acc[names[3]] - acc[names[1]]
        hungrier = ("neither is clearly hungrier for data" if abs(v_drop - c_drop) < 0.01 else
                    f"here the **{'ViT' if v_drop > c_drop else 'CNN'}** is hungrier for data")
        st.markdown(f"Going from 10% to 100% of the data gains the ViT **{v_drop * 100:+.1f}** points and the CNN "
                    f"**{c_drop * 100:+.1f}**: {hungrier}. The paper found the ViT to be the hungry one "
                    "at ImageNet scale: ResNets win on small data, ViTs only overtake them with much more "
                    "(Fig. 3-4). Short runs on a toy task are noisy; lengthen the budget to be sure.")
    if job.saved is not None and job.saved.exists():
        spec = f"file:{job.saved}"
        rel = job.saved.relative_to(USER_MODELS.parent) if job.saved.is_relative_to(USER_MODELS.parent) else job.saved
        st.success(f"Saved as `{rel}` (+ `.json`). It is in the sidebar's **Model** list now, as "
                   f"*Trained here: {job.saved.stem}*.", icon=":material/save:")
        row = st.container(horizontal=True)
        c = [row, row]
        c[0].button("Explain this model", key="tr_explain", icon=":material/visibility:",
                    on_click=_open_in_explainer, args=(spec,))
        if st.session_state.pop("tr_open", False):  # the picker's state (bound to ?model=) goes along
            st.switch_page(str(ROOT / "pages" / "overview.py"), query_params={})  # None would refuse: bound
        size_mb = job.saved.stat().st_size / 2**20
        if size_mb <= MAX_DOWNLOAD_MB:
            c[1].download_button("Download (zip)", model_zip(job.saved), file_name=f"{job.saved.stem}.zip",
                                 mime="application/zip", key="tr_dl", icon=":material/download:")

