"""The training page's live view and result: status, queue, curves, "watch it learn", keeping a model.

``pages/train.py`` calls these in order, so the page still reads top to bottom. The job shown may
be this session's own or the class run (read-only here unless this session started it).
"""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from pages._ui import cache
from pages._ui.site import FAMILY_COLORS, PLOTLY_CONFIG, ROOT, USER_MODELS
from pages._ui.widgets import row
from vit_core.analysis.embeddings import GRID_GAP_CLEAR, neighbour_vs_far
from vit_core.render import charts, drawing, figures
from vit_core.training import jobs, runs

MAX_DOWNLOAD_MB = 200


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


# --- status ---------------------------------------------------------------------------------------
def queued_line(job: runs.Job, mgr: jobs.JobManager, whose: str = "yours") -> None:
    """Position in line and estimated start of a waiting job."""
    pos, eta = mgr.queue_position(job), mgr.estimated_start(job)
    start = ("any moment now" if eta is None or eta < 5 else f"in about {_fmt_eta(eta)}")
    slots = f"{mgr.max_running} at a time" if mgr.max_running > 1 else "one at a time"
    st.info(f"Queued: **{pos}** in line, starting {start}. Runs train {slots} on this machine "
            f"({mgr.running()} running now); {whose} starts as soon as a place is free.",
            icon=":material/hourglass_top:")


def class_banner(job: runs.Job) -> None:
    st.info("**Class run**: the whole class is watching the lecturer's run, live. You can still queue a run "
            "of your own below it." if job.active else
            "**Class run** (ended): the lecturer's run, as the whole class saw it.", icon=":material/groups:")


def status_line(job: runs.Job, mgr: jobs.JobManager) -> None:
    if job.state == "queued":
        queued_line(job, mgr, "the class run" if job.class_run else "yours")
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


# --- live numbers and curves ----------------------------------------------------------------------
def metrics(job: runs.Job) -> None:
    lg = job.logs[job.current] if 0 <= job.current < len(job.logs) else None
    last = lg.last if lg else None
    if lg is not None and len(job.plan.legs) > 1:
        st.caption(f"Numbers for **{lg.name}** (run {job.current + 1} of {len(job.plan.legs)}); the curves show all.")
    c = row(6)
    c[0].metric("Step", f"{last.step:,}" if last else "0")
    c[1].metric("Loss", f"{last.loss:.3f}" if last else "–",
                help="Training cross-entropy (label-smoothed); on Shapes the ViT's also includes the "
                     "token-labelling term (each object patch must name the class too), so it starts near 4.6.")
    c[2].metric("Train accuracy", f"{last.train_acc:.0%}" if last else "–")
    c[3].metric("Val accuracy", f"{lg.evals[-1].val_acc:.1%}" if lg and lg.evals else "–")
    c[4].metric("Images / s", f"{last.images_per_s:,.0f}" if last else "–")
    c[5].metric("ETA" if job.active else "Time", _fmt_eta(last.eta_s) if job.active and last
                else (f"{sum(x.seconds for x in job.logs):.0f} s" if last else "–"))


CURVES_EVERY_S = 1.0


def curves_chart(job: runs.Job) -> None:
    """The curves, built at most once a second per run and shared by every session watching it.

    A room watches one run, each tab ticking on its own clock: keyed by the steps logged, nearly
    every tick of every watcher built a figure of its own (make_subplots, ~40 ms), most of what 20
    watchers cost everyone else's pages. A run that has ended is keyed by its final log.
    """
    when = int(time.monotonic() // CURVES_EVERY_S) if job.active else "end"
    cache.plotly_chart(cache.chart("train_curves", (job.id, job.created, when), curves, job), key="tr_curves")


def curves(job: runs.Job) -> go.Figure:
    return charts.training_curves(job.logs, FAMILY_COLORS)


def _rollout_strip(snap) -> np.ndarray:
    """The snapshot's validation image beside its rollout overlay, upscaled to about 288 px."""
    big = figures.upscale(snap.image, max(1, 288 // snap.image.shape[0]))
    return np.concatenate([big, figures.overlay(big, snap.rollout, alpha=0.55)], axis=1)  # (H, 2W, 3)


def _pos_mosaic(snap) -> np.ndarray:
    return drawing.similarity_mosaic(snap.pos_similarity, tile=40 if snap.pos_similarity.shape[0] <= 64 else 24)[0]


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
    # Encoded once per snapshot and shared by every watcher: a tick only sends the bytes again.
    key = (job.id, job.created, lg.name, step)
    with left:
        st.image(cache.encoded("train_rollout", key, _rollout_strip, snap, fmt="png", url=True), width="stretch",
                 caption=f"Attention rollout on a fixed validation image at step {step}"
                         + (f" (validation accuracy {acc:.0%})" if acc is not None else "")
                         + ": where [CLS] gathers information from.")
    with right:
        st.image(cache.encoded("train_pos", key, _pos_mosaic, snap, fmt="png", url=True), width="stretch",
                 caption="Position embeddings: tile i shows how similar position i is to every other position "
                         "(red = similar). They start as noise; training can discover rows, columns and "
                         "neighbourhoods (paper Fig. 7, centre).")
        nf = neighbour_vs_far(snap.pos_similarity)
        if not np.isnan(nf["far"]):
            gap = nf["near"] - nf["far"]
            verdict = ("a clear 2-D map" if gap >= GRID_GAP_CLEAR else "some 2-D order" if gap >= 0.05 else
                       "no 2-D order yet: position embeddings organise slowly, over minutes rather than "
                       "seconds; the classifier can succeed without them")
            st.markdown(f"Grid neighbours vs positions 5+ cells apart: cosine **{nf['near']:.2f}** vs "
                        f"**{nf['far']:.2f}**, a gap of **{gap:+.2f}** at step {step}: {verdict}. "
                        "(The bundled model's gap, after an hour of training: see its model card.)")


# --- the result -----------------------------------------------------------------------------------
def model_zip(path: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, path.name)
        zf.write(path.with_suffix(".json"), path.with_suffix(".json").name)
    return buf.getvalue()


def _open_in_explainer(spec: str) -> None:
    st.session_state.model = spec
    st.session_state.tr_open = True


def _verdicts(job: runs.Job) -> None:
    vit_logs = [x for x in job.logs if x.model == "vit"]
    cnn_logs = [x for x in job.logs if x.model == "cnn"]
    if job.plan.kind == "compare" and vit_logs and cnn_logs and cnn_logs[0].steps and vit_logs[0].steps:
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
        for fam in ("ViT", "CNN"):
            xs = [n.split(" · ")[1] for n in names if n.startswith(fam)]
            fig.add_trace(go.Bar(x=xs, y=[acc[f"{fam} · {x}"] for x in xs], name=fam, marker_color=FAMILY_COLORS[fam],
                                 text=[f"{acc[f'{fam} · {x}']:.0%}" for x in xs]))
        fig.update_layout(height=280, yaxis=dict(range=[0, 1], title="validation accuracy"),
                          margin=dict(l=10, r=10, t=30, b=10), title="Validation accuracy by training-set size")
        cache.plotly_chart(fig, key="tr_datasize", config=PLOTLY_CONFIG)
        v_drop, c_drop = acc[names[2]] - acc[names[0]], acc[names[3]] - acc[names[1]]
        hungrier = ("neither is clearly hungrier for data" if abs(v_drop - c_drop) < 0.01 else
                    f"here the **{'ViT' if v_drop > c_drop else 'CNN'}** is hungrier for data")
        st.markdown(f"Going from 10% to 100% of the data gains the ViT **{v_drop * 100:+.1f}** points and the CNN "
                    f"**{c_drop * 100:+.1f}**: {hungrier}. The paper found the ViT to be the hungry one "
                    "at ImageNet scale: ResNets win on small data, ViTs only overtake them with much more "
                    "(Fig. 3-4). Short runs on a toy task are noisy; lengthen the budget to be sure.")


def _saved(path: Path, class_run: bool) -> None:
    rel = path.relative_to(USER_MODELS.parent) if path.is_relative_to(USER_MODELS.parent) else path
    where = (f"for the whole class: every session's **Model** list has it, as *Class run: {path.stem}*"
             if class_run else f"in the sidebar's **Model** list of this session (not anyone else's), as "
                               f"*Trained here: {path.stem}*")
    st.success(f"Saved as `{rel}` (+ `.json`). It is {where}.", icon=":material/save:")
    actions = st.container(horizontal=True)
    actions.button("Explain this model", key="tr_explain", icon=":material/visibility:",
                   on_click=_open_in_explainer, args=(f"file:{path}",))
    if st.session_state.pop("tr_open", False):  # the picker's state (bound to ?model=) goes along
        st.switch_page(str(ROOT / "pages" / "overview.py"), query_params={})  # None would refuse: bound
    if path.stat().st_size / 2**20 <= MAX_DOWNLOAD_MB:
        actions.download_button("Download (zip)", model_zip(path), file_name=f"{path.stem}.zip",
                                mime="application/zip", key="tr_dl", icon=":material/download:")


def result(job: runs.Job, mgr: jobs.JobManager, own: bool) -> None:
    """The verdicts of an ended run, and its model: saved, or (a stopped run) kept only on request."""
    if job.active:
        return
    _verdicts(job)
    if own and job.pending is not None and job.saved is None:
        st.info("You stopped this run, so its model was not saved. Keep it if it is worth explaining.",
                icon=":material/help:")
        if st.button("Keep this model", key="tr_keep", icon=":material/save:"):
            mgr.keep(job.session_id)
            st.rerun()
    if job.saved is not None and job.saved.exists():
        _saved(job.saved, job.class_run)


def your_models(paths: list[Path]) -> None:
    """This session's kept models (newest first), each downloadable; no one else's page lists them."""
    if not paths:
        return
    with st.expander(f"Your trained models ({len(paths)}), kept for this browser session"):
        for i, path in enumerate(paths):
            line = st.container(horizontal=True, vertical_alignment="center")
            line.markdown(f"`{path.stem}` · {path.stat().st_size / 2**20:.1f} MB")
            if path.stat().st_size / 2**20 <= MAX_DOWNLOAD_MB:
                line.download_button("Download", lambda p=path: model_zip(p), file_name=f"{path.stem}.zip",
                                     mime="application/zip", key=f"tr_dl_{i}", icon=":material/download:",
                                     on_click="ignore")
