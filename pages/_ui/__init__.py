"""The Streamlit layer under the pages: sidebar, caches, lecture chrome, widgets, training view.

The only place besides the page files that imports Streamlit; ``vit_core`` never does. Private
Streamlit calls live in ``st_private`` alone.
"""
