"""ViT Explainer: page config and navigation. Run with `make run` (or `streamlit run app.py`).

Every page draws the shared sidebar itself (pages/_ui/sidebar.py), so that the same page works
under Streamlit's AppTest, which drops what this file writes before pg.run() on later reruns.
"""
import streamlit as st

from pages._ui import sidebar, warmup
from pages._ui.site import ALIASES, PAGES, ROOT

sidebar.APP_STARTED = True
warmup.precompute_gallery()

# "auto": open beside the page on a wide screen, collapsed on a phone (where it would cover it).
st.set_page_config(page_title="ViT Explainer", page_icon=":material/grid_view:", layout="wide",
                   initial_sidebar_state="auto")
pages = [st.Page(str(ROOT / path), title=title, url_path=url if i else "index", icon=icon, default=(i == 0))
         for i, (path, title, url, icon) in enumerate(PAGES) if (ROOT / path).exists()]
# The first page lives at "/"; its navigation name must work as a URL too (/overview). Streamlit
# serves the default page only at "/", so the same script is also registered, hidden, there.
path, title, url, icon = PAGES[0]
pages.append(st.Page(str(ROOT / path), title=title, url_path=url, icon=icon, visibility="hidden"))
by_file = {p[0]: p for p in PAGES}
pages += [st.Page(str(ROOT / f), title=by_file[f][1], url_path=alias, icon=by_file[f][3], visibility="hidden")
          for alias, f in ALIASES.items() if (ROOT / f).exists()]
pg = st.navigation(pages, expanded=True)
pg.run()
