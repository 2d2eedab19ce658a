"""The Streamlit layer under the pages: sidebar, caches, lecture chrome, widgets, training view.

The only place besides the page files that imports Streamlit; ``vit_core`` never does. Private
Streamlit calls live in ``st_private`` alone. Importing this package first runs ``warmup``
(eager imports that would otherwise race between the first sessions of a fresh server).
"""
from pages._ui import warmup  # noqa: F401
