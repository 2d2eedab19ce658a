"""The hall server walks its own pages once, as the first student would, before the class does.

``warmup.prepare_server`` loads the model and analyses the gallery before the port opens, but each
page also builds its figures, pictures and tables once per process (``pages/_ui/cache.py``), and
only a page run does that. On a fresh server the first students pay for it together: a 100-student
walk through two fresh replicas took 18.4 s, through the same replicas a minute later 13.0-15.2 s
(BENCHMARKS "Lecture hall"). So before the port opens, ``rehearse`` serves the app on a private
localhost port for a moment and walks it through Streamlit's own protocol (the health check's XSRF
cookie, the ``/_stcore/stream`` websocket, one rerun per page), once per deep link.

Standard library, ``websockets`` (Streamlit's own dependency) and ``streamlit.proto`` only.
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from streamlit import config
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

FINISHED = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR)


def _health(base: str, deadline: float) -> str:
    """Wait for the port; return the XSRF cookie's value ("" when XSRF is off)."""
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=5) as reply:
                jar = SimpleCookie()
                for header in reply.headers.get_all("Set-Cookie") or []:
                    jar.load(header)
                return jar["_streamlit_xsrf"].value if "_streamlit_xsrf" in jar else ""
        except urllib.error.HTTPError:
            raise  # the server answers, but not here (another base path): waiting will not help
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _run(ws, query: str, page_hash: str = "", timeout: float = 120) -> tuple[list, int]:
    """One rerun; returns the pages the server announced in it (navigation / new_session) and the
    number of exception elements it drew."""
    msg = BackMsg()
    msg.rerun_script.query_string = query
    msg.rerun_script.page_script_hash = page_hash
    ws.send(msg.SerializeToString())
    pages: list = []
    exceptions = 0
    while True:
        fwd = ForwardMsg()
        fwd.ParseFromString(ws.recv(timeout=timeout))
        kind = fwd.WhichOneof("type")
        if kind == "navigation":
            pages = list(fwd.navigation.app_pages)
        elif kind == "new_session" and not pages:
            pages = list(fwd.new_session.app_pages)
        elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
            exceptions += fwd.delta.new_element.WhichOneof("type") == "exception"
        elif kind == "script_finished" and fwd.script_finished in FINISHED:
            return pages, exceptions


def walk(base: str, query: dict, timeout: float = 300) -> tuple[int, int, float]:
    """Open ``base`` (e.g. http://127.0.0.1:8501) with ``query`` and run every listed page once.

    Returns:
        (pages run, exception elements drawn, seconds).
    """
    from websockets.sync.client import connect

    start = time.monotonic()
    xsrf = _health(base, start + timeout)
    qs = urlencode(query)
    headers = {"Cookie": f"_streamlit_xsrf={xsrf}"} if xsrf else {}
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    with connect("ws" + base[len("http"):] + "/_stcore/stream", origin=origin, max_size=None, open_timeout=30,
                 subprotocols=["streamlit", xsrf or "PLACEHOLDER_AUTH_TOKEN"], additional_headers=headers,
                 proxy=None) as ws:
        pages, exceptions = _run(ws, qs)
        shown = [p for p in pages if not p.is_hidden and not p.HasField("external_url")]
        for page in shown[1:]:
            exceptions += _run(ws, qs, page_hash=page.page_script_hash)[1]
    return len(shown), exceptions, time.monotonic() - start


async def rehearse(app, queries: list[dict]) -> str:
    """Walk the pages once per query through ``app`` served on a private localhost port, before the
    real port opens (from ``st.App``'s lifespan, where the runtime already runs).

    Returns:
        One line for the server log.
    """
    import asyncio
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    path = (config.get_option("server.baseUrlPath") or "").strip("/")
    base = f"http://127.0.0.1:{sock.getsockname()[1]}" + (f"/{path}" if path else "")
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    start, walked, exceptions, failed = time.monotonic(), 0, 0, []
    try:
        for query in queries:
            try:
                n, e, _ = await asyncio.to_thread(walk, base, query)
                walked, exceptions = walked + n, exceptions + e
            except Exception as err:  # a warm-up must never keep the server from starting
                failed.append(f"{urlencode(query) or 'default'}: {err!r}")
    finally:
        server.should_exit = True
        await serving
        sock.close()
    line = (f"ViT Explainer rehearsed {walked} page runs ({len(queries)} deep links) in "
            f"{time.monotonic() - start:.1f} s, {exceptions} exceptions")
    return line + (f"; could not: {'; '.join(failed)}" if failed else "")
