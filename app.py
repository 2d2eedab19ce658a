"""ViT Explainer: page config and navigation. Run with `make run` (or `streamlit run app.py`).

Every page draws the shared sidebar itself (pages/_ui/sidebar.py), so that the same page works
under Streamlit's AppTest, which drops what this file writes before pg.run() on later reruns.
"""
import streamlit as st

from pages._ui import sidebar, warmup
from pages._ui.site import PAGES, ROOT

sidebar.APP_STARTED = True
warmup.precompute_gallery()

st.set_page_config(page_title="ViT Explainer", page_icon=":material/grid_view:", layout="wide",
                   initial_sidebar_state="expanded")
pg = st.navigation(expanded=True, pages=[
    st.Page(str(ROOT / path), title=title, url_path=url, icon=icon, default=(i == 0))
    for i, (path, title, url, icon) in enumerate(PAGES)
    if (ROOT / path).exists()
])
pg.run()
