"""The lecture hall's entry point: ``streamlit run deploy/hall.py`` (from the repository root).

The same app as ``streamlit run app.py``, with its start-up work done before the port opens.
Streamlit runs an app's script only when a visitor arrives, so on a plain fresh server the first
session imports torch, loads the model and analyses the gallery while the rest of the class
queues behind it (a 100-student class opening a fresh server: first page p95 6.8 s, BENCHMARKS
"Lecture hall"). ``st.App``'s lifespan hook runs ``warmup.prepare_server`` first, so the server,
and a load balancer's health check, answer only once it is warm.
"""
import asyncio
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run deploy/hall.py` puts deploy/ on the path, not the root
    sys.path.insert(0, str(ROOT))


@asynccontextmanager
async def lifespan(app):
    from deploy import warm_walk
    from pages._ui import warmup
    from pages._ui.site import sample_names

    print(await asyncio.to_thread(warmup.prepare_server), flush=True)
    if os.environ.get("VIT_WARM_WALK", "1") != "0":
        # Every page once for each gallery sample (the lecture's QR code opens one of them, and the
        # default view is one of them): each page builds its figures and pictures once per process.
        queries = [{"sample": name} for name in sample_names()]
        print(await warm_walk.rehearse(app, queries), flush=True)
    yield


app = st.App(str(ROOT / "app.py"), lifespan=lifespan)
