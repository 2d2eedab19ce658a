"""ViT Explainer: page config and navigation. Run with `make run` (or `streamlit run app.py`).

Every page draws the shared sidebar itself (pages/_ui/sidebar.py), so that the same page works
under Streamlit's AppTest, which drops what this file writes before pg.run() on later reruns.
"""
import streamlit as st

from pages._ui import navigation, sidebar, warmup

sidebar.APP_STARTED = True
warmup.precompute_gallery()

# "auto": open beside the page on a wide screen, collapsed on a phone (where it would cover it).
st.set_page_config(page_title="ViT Explainer", page_icon=":material/grid_view:", layout="wide",
                   initial_sidebar_state="auto")
pg = st.navigation(navigation.pages(), expanded=True)
pg.run()
