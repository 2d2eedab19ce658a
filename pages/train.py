"""Train a ViT live: pick data and a model, train it in the background, watch it learn, compare with a CNN."""
from __future__ import annotations

import streamlit as st

from pages._ui import present, st_private
from pages._ui import train_view as view
from pages._ui.sidebar import sidebar
from pages._ui.site import USER_MODELS
from pages._ui.train_form import form
from pages._ui.widgets import code_box, header
from vit_core import cnn
from vit_core.training import jobs, loop, plans, store

ctx = sidebar()
header("Train a ViT live, and watch it learn",
       "Everything on the other pages was computed with a model trained beforehand. Here you train one "
       "**from scratch**, right now: pick the data and the model, press *Train*, and watch the loss fall, "
       "the accuracy rise, the position embeddings discover the 2-D grid and the attention find the "
       "object. One more click trains a **CNN of the same size** on the same data and budget, to test the "
       "paper's central claim: without a CNN's built-in locality, a ViT needs **more data** to catch up "
       "(Dosovitskiy et al., 2020, Sec. 4.2 and Fig. 3-4).", ctx)

mgr = jobs.manager(alive=st_private.session_alive)
mgr.warm()
if "_train_sid" not in st.session_state:  # kept: the watchdog asks the server about this id
    st.session_state._train_sid = st_private.session_id()
sid = st.session_state._train_sid
mgr.heartbeat(sid)
job = mgr.get(sid)
busy = job is not None and job.active

f = form(busy)

# --- the buttons ----------------------------------------------------------------------------------
lecturer = present.is_present() or str(st.query_params.get("class_run", "")) == "1"
cls = mgr.class_job()
as_class = False
row = st.container(horizontal=True, vertical_alignment="center")
can = f.ok and not busy
clicked = None
if row.button("Train the ViT", type="primary", key="tr_go", disabled=not can, icon=":material/play_arrow:"):
    clicked = "train"
if row.button("ViT vs CNN", key="tr_cmp", disabled=not can, icon=":material/compare_arrows:",
              help="The ViT, then a CNN of similar parameter count on the same data, each for half the budget."):
    clicked = "compare"
if row.button("Data size: 10% vs 100%", key="tr_size", disabled=not can, icon=":material/database:",
              help=f"ViT and CNN on 10% and on 100% of a fixed training set ({plans.full_size(f.choices) or 0:,} "
                   "images), each for a quarter of the budget: which one suffers more from less data? Give it a few "
                   "minutes on a CPU: four runs of a few seconds only measure noise."):
    clicked = "data-size"
if row.button("Stop", key="tr_stop", disabled=not busy, icon=":material/stop:"):
    mgr.stop(sid)
    st.rerun()
if lecturer:
    going = cls is not None and cls.active
    as_class = row.toggle("Start as class run", key="tr_class", disabled=busy or going,
                          help="Every student on this page watches your run, live, instead of starting their "
                               "own; their own runs queue behind it. One class run at a time; its model is "
                               "listed for everyone.")
if clicked:
    owner = store.CLASS if as_class else store.owner_of(st.session_state)
    plan = plans.plan_for(clicked, f.choices, f.label, f.zip_data, store.ModelStore(USER_MODELS), owner)
    try:
        mgr.submit(sid, plan, class_run=as_class)
    except jobs.ClassRunBusy:
        st.session_state.tr_class_busy = True
    except jobs.JobBusy:
        pass  # a double click: the first one started it
    st.rerun()  # redraw the buttons and start the live view's timer
if st.session_state.pop("tr_class_busy", False):
    st.warning("A class run is already going: everyone is watching it. Start yours as a personal run.",
               icon=":material/groups:")
job = mgr.get(sid)
busy = job is not None and job.active
if busy:
    st.caption("Training runs in the background: you can visit other pages and come back. Closing the "
               "tab stops it.")


# --- live view ------------------------------------------------------------------------------------
def live() -> None:
    mgr.heartbeat(sid)
    own, shown = mgr.get(sid), mgr.shown(sid)
    if shown is None:
        st.info("No run yet. Press **Train the ViT**: with the defaults it takes a minute on a laptop CPU.",
                icon=":material/info:")
        return
    if own is not None and own.state == "queued" and shown is not own:
        view.queued_line(own, mgr)
    if shown.class_run and shown.session_id != sid:
        view.class_banner(shown)
    view.status_line(shown, mgr)
    view.metrics(shown)
    if any(x.steps for x in shown.logs):
        view.curves_chart(shown)
    view.watch_it_learn(shown)
    moving = shown.active or (own is not None and own.active)
    if moving:
        st.session_state.tr_was_active = True
    elif st.session_state.get("tr_was_active"):
        st.session_state.tr_was_active = False
        st.rerun(scope="app")  # the run ended: stop the timer, show the final state everywhere


st.subheader("4 · Live view")
shown = mgr.shown(sid)
ticking = busy or (shown is not None and shown.active)
# Each tick reruns this part for this student; a room watching or queueing at one tick a second
# slowed every other page (20 students pressing Train at once: others' page p95 4x). The one whose
# run it is sees every second; watchers of another's (or the class) run every 2.5 s; a queue
# position changes once a run ends, so every 5 s.
mine = job is not None and job.state != "queued" and shown is job
interval = 1.0 if mine else (2.5 if shown is not None and shown.active else 5.0)
st.fragment(run_every=interval if ticking else None)(live)()
if shown is not None and not shown.active:
    view.result(shown, mgr, own=shown.session_id == sid)  # outside the fragment: once the run has ended

owner = store.owner_of(st.session_state, create=False)
view.your_models(store.ModelStore(USER_MODELS).own(owner) if owner else [])
code_box(loop.fit, loop.param_groups, cnn.SmallCNN, jobs.JobManager.check)
