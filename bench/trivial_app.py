"""A trivial Streamlit app with N pages: the baseline bench/classroom.py compares an app against.

Each page writes a title, a few lines of markdown and one sidebar selectbox, so that it costs what
a page costs Streamlit itself and nothing more. With ``?source=Upload`` the sidebar also shows a
file uploader (for the upload scenario). Environment:

    TRIVIAL_APP_PAGES   number of pages (default 13)
    TRIVIAL_APP_RAISE   1-based number of a page that raises ValueError (to test exception counting)
    TRIVIAL_APP_SLOW    "PAGE:SECONDS": that page sleeps before it finishes (to test page timeouts)

    streamlit run bench/trivial_app.py
"""
import os
import time

import streamlit as st

N = max(1, int(os.environ.get("TRIVIAL_APP_PAGES", "13")))
RAISE = int(os.environ.get("TRIVIAL_APP_RAISE", "0") or 0)
SLOW_PAGE, _, SLOW_S = os.environ.get("TRIVIAL_APP_SLOW", "0:0").partition(":")


def make_page(i: int):
    def page() -> None:
        st.sidebar.selectbox("Sample image", [f"sample-{k}.png" for k in range(6)], key="sample",
                             bind="query-params")
        if st.query_params.get("source") == "Upload":
            st.sidebar.file_uploader("Your image", key="upload")
        st.title(f"Page {i}")
        st.markdown(f"This is page **{i}** of {N}: a few lines of text, no computation.\n\n"
                    "- one list item\n- another list item\n\nAnd a closing sentence.")
        if i == RAISE:
            raise ValueError(f"trivial page {i} raises on purpose")
        if i == int(SLOW_PAGE or 0):
            time.sleep(float(SLOW_S or 0))

    page.__name__ = f"page_{i}"  # st.Page derives the url path and the page's identity from it
    return page


pg = st.navigation([st.Page(make_page(i), title=f"Page {i}", url_path=f"p{i}", default=(i == 1))
                    for i in range(1, N + 1)])
pg.run()
