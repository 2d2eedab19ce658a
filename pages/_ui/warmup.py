"""What a fresh server does once, before (and while) the first students arrive.

1. Imports what the pages would otherwise import lazily, inside figure code, in several script
   threads at once. Plotly's validators import pandas on first use; two sessions drawing their
   first figure at the same moment raced in that import ("partially initialized module 'pandas'
   has no attribute 'Series'"). This module runs under Python's import lock when
   ``pages._ui`` is first imported, so the first session finishes these imports before any
   other session's script can reach them.
2. Under ``deploy/hall.py``, before the port opens (``prepare_server``): imports every module the
   pages import, and timm, warms the gallery, then moves everything alive into the garbage
   collector's permanent generation
   (``gc.freeze``). Torch, plotly, pandas and Streamlit leave ~500,000 tracked objects; a full
   collection walks all of them (0.3-0.8 s on the 2-core server), and Streamlit used to run one
   after every page run of every student (``runner.postScriptGC``, now off in config.toml). Frozen
   objects are never walked again; what pages create later is still collected as usual.
3. Caps glibc's malloc arenas (``heavy.limit_malloc_arenas``): every session's script thread
   would otherwise grow an arena of its own that keeps freed analyses (measured below in
   BENCHMARKS "Lecture hall": the upload class's memory).
4. Gives torch one thread per analysis slot (``heavy.set_torch_threads``): the queue already keeps
   every core busy with its own pass, so a pass spread over all cores would only oversubscribe them.
5. Starts a thread that drops closed tabs' sessions once their reconnect window is over
   (``st_private.expire_closed_sessions``: Streamlit would keep them until another tab closes),
   releases the results of pictures whose tabs have closed (``uploads.release_closed``) and shared
   results nobody has asked for in a minute (``release_idle``: the class that left), every 10 s.
6. On the first page run (or before the server opens, under ``deploy/hall.py``: ``prepare_server``),
   starts one background thread that analyses the bundled sample images
   on the default model, so that the lecturer's link (a sample, the default model) is instant for
   the whole room, and reads the Critics page's shortcut lesson as it opens.
"""
from __future__ import annotations

import ast
import gc
import importlib
import os
import threading
import time

import matplotlib
import numpy as np
import pandas  # noqa: F401  (imported here on purpose, see above)
import plotly.graph_objects as go
import plotly.io
import plotly.tools
import PIL.Image
import segno  # noqa: F401  (the QR code of the share box)

from pages._ui import heavy, st_private, uploads


def _touch_plotly() -> None:
    """Build and serialise one figure of every trace type the pages use, as st.plotly_chart does."""
    z = np.zeros((2, 2))
    fig = go.Figure(data=[go.Scatter(x=[0, 1], y=[0, 1]), go.Bar(x=["a"], y=[1]),
                          go.Heatmap(z=z, colorbar=dict(title="c")),
                          go.Image(z=np.zeros((2, 2, 3), dtype=np.uint8))],
                    layout=dict(title="warm-up", xaxis=dict(type="log"), annotations=[dict(text="a")]))
    spec = plotly.tools.return_figure_from_figure_or_data(fig, validate_figure=True)
    plotly.io.to_json(spec, validate=False)
    pandas.DataFrame({"a": [1]}).to_json()


def _touch_imaging() -> None:
    PIL.Image.init()  # registers every image plugin once, instead of on the first odd upload
    matplotlib.colormaps["viridis"](np.zeros(1))


YOUNG_GC_THRESHOLD = 20_000  # gc's default is 700 (see freeze_heap)


def freeze_heap() -> bool:
    """Collect once, then exempt every object alive now from later collections (True when it did).

    Only where no session's objects can be alive yet (``prepare_server``): a frozen object is never
    collected, so a page namespace frozen while a student was on the page (a cycle
    through its functions' globals) kept that student's analysis for the server's lifetime. The
    gallery warm-up started by ``streamlit run app.py`` runs beside the first class and froze them:
    20 of 30 ViT-B analyses of a class outlived it (measured; BENCHMARKS "Lecture hall").
    """
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx() is not None:
        # Imported by a page run (``streamlit run app.py``): a session exists. Freezing there kept
        # later sessions' analyses alive for good (a probe after a 12-student ViT-B upload class:
        # 11 of their 12 analyses outlived every session, all freed once unfrozen), so such a server
        # goes without; ``deploy/hall.py`` freezes before its port opens.
        return False
    gc.collect()
    gc.freeze()
    # A young-generation collection every 20,000 allocations instead of 700: a page run allocates
    # thousands of short-lived objects (protobufs, dicts), and a 50-student walk paid ~0.5 s of
    # collections, 0.2 s at this threshold (BENCHMARKS "Lecture hall", sixth pass). Cycles are
    # still collected within a few page runs; the housekeeping thread collects fully as a class leaves.
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    return True


# Results nobody asked for in this long are released (``VIT_IDLE_RELEASE_S``), as Streamlit releases
# a closed tab's session after 60 s: a student reading one page asks for them again on every rerun,
# a class that has left does not, and the next class should find the memory it left behind.
IDLE_RELEASE_S = float(os.environ.get("VIT_IDLE_RELEASE_S", "") or 60)


def gallery_shas() -> set[str]:
    """SHA-256 of the bundled samples (their analyses stay: every lecture link opens on one)."""
    from pages._ui import cache
    from pages._ui.site import sample_names

    return {cache.sample_bytes(name)[1] for name in sample_names()}


def release_idle(idle_s: float = IDLE_RELEASE_S, now: float | None = None,
                 gallery: set[str] | None = None) -> int:
    """Drops shared results idle for ``idle_s`` seconds (analyses, layer results, figures, pictures);
    the gallery's analyses stay (every lecture link opens on one). Returns how many entries went."""
    gallery = gallery_shas() if gallery is None else gallery
    n = heavy.ANALYSES.expire_idle(idle_s, keep=lambda key: key[1] in gallery, now=now)
    return n + sum(c.expire_idle(idle_s, now=now) for c in (heavy.RESULTS, heavy.LIGHT, heavy.FIGURES, heavy.PICTURES))


def _housekeeping(every_s: float = 10.0) -> None:
    """Every few seconds, drop closed sessions past their reconnect window (st_private), collect
    the cycles they leave when some went (Streamlit's per-run collection is off: config.toml),
    release the pictures of tabs that closed (``uploads``) and shared results nobody asks for any
    more (their memory goes back through the caches' own ``heavy.release_freed``)."""
    known = None
    while True:
        time.sleep(every_s)
        expired = st_private.expire_closed_sessions()
        count = st_private.session_count()
        # Streamlit also drops expired sessions itself whenever another tab closes: collect after
        # any drop in the count, not only after ours (their page namespaces are cycles that hold
        # each student's analysis until a collection; a class leaving would otherwise keep them).
        if expired or (count is not None and known is not None and count < known):
            gc.collect()
        known = count
        try:
            gallery = gallery_shas()
            uploads.release_closed(keep=gallery)
            release_idle(gallery=gallery)
        except Exception:  # housekeeping must never stop; the byte bounds still hold
            pass


_STARTED = threading.Event()


def precompute_gallery(wait: bool = False) -> None:
    """Analyse every bundled sample on the default model (shared caches), once per process.

    Runs in a daemon thread; pages that need an analysis before it finishes simply join the
    queue like any other request. ``VIT_WARMUP=0`` switches it off (tests that count work).

    Args:
        wait: return only once it is done (the hall's start-up, before the port opens).
    """
    if _STARTED.is_set() or os.environ.get("VIT_WARMUP", "1") == "0":
        return
    _STARTED.set()

    def run() -> None:
        from pages._ui import cache, sidebar
        from pages._ui.site import sample_names

        try:
            from vit_core import LAZY_IMPORTS

            with LAZY_IMPORTS:  # sessions that need timm meanwhile wait here, not in a half-done import
                import timm  # noqa: F401  (ImageNet and random: models need it; off the page path)

            spec = sidebar.default_spec()
            cache.get_model(spec)
            cache.get_model_figures(spec)
            for name in sample_names():
                data, sha = cache.sample_bytes(name)
                cache.get_analysis(spec, sha, data)
            shortcut_lesson()
        except Exception:  # a warm-up must never take the server down; pages compute on demand
            pass
        if wait:  # before the port opens: everything alive now belongs to the server, none to a session
            freeze_heap()

    thread = threading.Thread(target=run, name="vit-warmup", daemon=True)
    thread.start()
    if wait:
        thread.join()


def page_modules() -> list[str]:
    """Every module the pages import (read from their source, so a new page is covered too)."""
    from pages._ui.site import PAGES, ROOT

    names: set[str] = set()
    for path, *_ in PAGES:
        for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)  # submodules; others skipped
    return sorted(names)


def import_page_modules() -> int:
    """Imports every module the pages import, and timm (which models load lazily). Returns how many.

    Before ``freeze_heap``, so that what they leave behind (timm's model registry alone, ~4,000
    configs) is exempt from collections: on a server whose heap is not frozen (``streamlit run
    app.py``) a full collection after a class walked 254,000 objects (145 ms with the GIL held),
    on ``deploy/hall.py`` 37,000 (25 ms).
    """
    from vit_core import LAZY_IMPORTS

    done = 0
    with LAZY_IMPORTS:  # as the model loaders take it: no session meets a half-done import
        import timm  # noqa: F401
        for name in page_modules():
            try:
                importlib.import_module(name)
                done += 1
            except ImportError:  # "from x import some_function": not a module, imported with x already
                pass
    return done


def prepare_server() -> str:
    """What the first visitors would otherwise wait for, done before the server accepts any.

    ``deploy/hall.py`` calls this from its start-up hook (``st.App``'s lifespan), so the port
    opens only once the pages' modules are imported, the default model is loaded and the gallery
    analysed: a class arriving at a fresh server all at once then meets a warm one.

    Returns:
        One line for the server log: what is ready, counted from the caches themselves.
    """
    start = time.perf_counter()
    done = import_page_modules()
    precompute_gallery(wait=True)
    return (f"ViT Explainer is warm after {time.perf_counter() - start:.1f} s: {done} page modules imported, "
            f"{len(heavy.ANALYSES)} analyses cached")


def shortcut_lesson() -> None:
    """The Critics page's lesson as it opens (its default class, scene 0, both bundled stages): a class
    walking the pages reaches it together, and 160 scenes read by two models took seconds."""
    from pages._ui import cache
    from pages._ui.site import DEFAULT_SPEC, STAGE1_SPEC, shortcut_class

    cls = shortcut_class(cache.get_model(DEFAULT_SPEC).class_names)
    for spec in (DEFAULT_SPEC, STAGE1_SPEC):
        if cache.model_status(spec).state != "unavailable":
            cache.shortcut_pair(spec, cls, 0)
            cache.shortcut_class_counts(spec, cls)


# --- once per process, when app.py (or deploy/hall.py) first imports this module -----------------
heavy.limit_malloc_arenas()
heavy.set_torch_threads()
st_private.memoize_theme_messages()
_touch_plotly()
_touch_imaging()
threading.Thread(target=_housekeeping, name="vit-housekeeping", daemon=True).start()
