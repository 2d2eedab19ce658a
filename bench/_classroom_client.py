"""One simulated student for bench/classroom.py, speaking Streamlit's browser protocol.

What a browser tab does, in the order it does it: GET the page, GET ``/_stcore/health`` (which
sets the ``_streamlit_xsrf`` cookie) and ``/_stcore/host-config``, open ``/_stcore/stream`` with
the subprotocols ``["streamlit", <xsrf token>, <previous session id on a reconnect>]``, send
``rerun_script`` back-messages and read forward-messages until ``script_finished``. Every cookie a
response sets (a balancer's sticky cookie included) goes back on every later request, the
websocket upgrade included. Written against Streamlit 1.67's server (starlette_websocket.py,
starlette_routes.py, app_session.py) and its bundled frontend's sendRerunBackMsg.
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileURLs, UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from _classroom_http import CookieJar, http

FULL_RUN_DONE = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR)
WIDGET_TYPES = {"audio_input", "button", "button_group", "camera_input", "chat_input", "checkbox", "color_picker",
                "date_input", "date_time_input", "download_button", "file_uploader", "multiselect", "number_input",
                "radio", "selectbox", "slider", "text_area", "text_input", "time_input"}
MAX_TEXT = 200


class Dropped(Exception):
    """The websocket (or the server behind it) went away; the student reconnects."""


class PageTimeout(Exception):
    """The server did not finish a run in time (not a reason to reconnect: a browser would wait)."""


def first_line(text: str) -> str:
    line = next((s for s in text.strip().splitlines() if s.strip()), "")
    return line[:MAX_TEXT]


@dataclass
class Visit:
    """One page run: how long from the rerun to script_finished, and what it showed."""

    path: str
    seconds: float


@dataclass
class Student:
    """One browser tab against ``base``: its cookies, its session, its record of the class."""

    base: str
    index: int
    query: dict = field(default_factory=dict)
    page_timeout: float = 120
    keep_query: bool = False
    fetch_media: bool = True
    max_reconnects: int = 5
    # the record
    visits: list[Visit] = field(default_factory=list)
    open_s: float | None = None
    upload_s: float | None = None
    exceptions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reconnections: int = 0
    upload_failures: int = 0
    media_failures: int = 0
    statuses: list[str] = field(default_factory=list)  # main-area alerts the train page showed
    clicked: bool | None = None  # train: whether the button was there to press
    failure: str | None = None  # why the student could not finish, if it could not
    left: float = 0.0  # time.monotonic() when the student disconnected

    def __post_init__(self) -> None:
        self.jar = CookieJar()
        self.ws = None
        self.session_id = ""
        self.pages: list = []  # AppPage protos, from navigation (or new_session before st.navigation)
        self.main_hash = ""
        self.page_hash = ""
        self.path = ""
        self.qs = urlencode(self.query)
        self.elements: dict[tuple, tuple] = {}  # delta path -> (element, active script hash), this run
        self.widgets: dict[str, WidgetState] = {}  # values this student set, by widget id
        self.cache: dict[str, list] = {}  # hash -> [ForwardMsg, run count when last seen]
        self.runs = 0
        self.max_age = 2
        self.auto: dict[str, float] = {}  # fragment id -> interval of its run_every
        self._seen: set = set()

    # --- connection -------------------------------------------------------------------------------
    def _url(self, path: str = "") -> str:
        return f"{self.base}/{path}" + (f"?{self.qs}" if self.qs else "")

    async def connect(self) -> None:
        """Load the page like a browser tab, then open the websocket (resuming the session if any)."""
        await http(self._url(self.path), self.jar)
        status, _ = await http(f"{self.base}/_stcore/health", self.jar)
        if status != 200:
            raise Dropped(f"health answered HTTP {status}")
        await http(f"{self.base}/_stcore/host-config", self.jar)
        # Positional, as the frontend sends them: the XSRF slot keeps its place (with the frontend's
        # own placeholder when XSRF is off) so that a previous session id stays third.
        protocols = ["streamlit", self.jar.values.get("_streamlit_xsrf") or "PLACEHOLDER_AUTH_TOKEN"]
        if self.session_id:
            protocols.append(self.session_id)
        ws_url = "ws" + self.base[len("http"):] + "/_stcore/stream"
        try:
            self.ws = await connect(ws_url, subprotocols=protocols, origin=self.base, proxy=None,
                                    additional_headers={"Cookie": self.jar.header()}, max_size=None,
                                    max_queue=None, ping_interval=None, open_timeout=30, compression="deflate")
        except (InvalidHandshake, WebSocketException) as err:
            raise Dropped(f"websocket: {err}") from err
        self.jar.absorb(self.ws.response.headers.get_all("Set-Cookie"))

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except Exception:  # a dead server: nothing to close politely
                pass
            self.ws = None

    async def step(self, action, *args):
        """Run ``action``; when the connection drops, reconnect and run it again (a few times)."""
        tries = 0
        while True:
            try:
                if self.ws is None:
                    await self.connect()
                return await action(*args)
            except (Dropped, OSError, WebSocketException, EOFError) as err:
                await self.close()
                tries += 1
                if tries > self.max_reconnects:
                    raise Dropped(f"gave up after {tries - 1} reconnection attempts: {err}") from err
                self.reconnections += bool(self.session_id)  # a first connection that failed is no *re*connection
                await asyncio.sleep(min(2 ** tries * 0.25, 5))

    # --- messages ---------------------------------------------------------------------------------
    async def _send(self, msg: BackMsg) -> None:
        try:
            await self.ws.send(msg.SerializeToString())
        except WebSocketException as err:
            raise Dropped(str(err)) from err

    async def _recv(self, deadline: float | None = None) -> ForwardMsg:
        """The next forward-message; a PageTimeout at ``deadline`` (``time.monotonic()``), if given.

        Page runs pass no deadline: ``_until_finished`` sets one timeout for the whole run, since one
        per message was 8% of this tool's CPU, which a class on the same cores takes from the server.
        """
        try:
            if deadline is None:
                raw = await self.ws.recv()
            else:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    raw = await self.ws.recv()
        except WebSocketException as err:
            raise Dropped(str(err)) from err
        except TimeoutError:
            raise PageTimeout(f"[/{self.path}] no script_finished within {self.page_timeout:g} s") from None
        msg = ForwardMsg()
        msg.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
        return self._absorb(msg)

    def _absorb(self, msg: ForwardMsg) -> ForwardMsg:
        """Keep the state a browser keeps: the message cache, pages, URL, the elements of this run."""
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":
            hit = self.cache.get(msg.ref_hash)
            if hit is None:
                self.errors.append(f"[/{self.path}] cached ForwardMsg miss {msg.ref_hash}")
                return msg
            hit[1] = self.runs
            full = ForwardMsg()
            full.CopyFrom(hit[0])
            full.metadata.CopyFrom(msg.metadata)
            msg, kind = full, full.WhichOneof("type")
        elif msg.metadata.cacheable and msg.hash:
            self.cache[msg.hash] = [msg, self.runs]
        if kind == "new_session":
            ns = msg.new_session
            self.session_id = ns.initialize.session_id or self.session_id
            self.main_hash = ns.main_script_hash
            self.max_age = ns.config.max_cached_message_age or self.max_age
            if not self.pages or not any(p.url_pathname for p in self.pages):
                self.pages = list(ns.app_pages)
            if not msg.metadata.run.fragment_ids:  # a fragment's run keeps the rest of the page
                self.elements.clear()
                self.auto.clear()
                self.runs += 1
            self._set_page(ns.page_script_hash)
        elif kind == "navigation":
            self.pages = list(msg.navigation.app_pages)
            self._set_page(msg.navigation.page_script_hash)
        elif kind == "page_info_changed":
            self.qs = msg.page_info_changed.query_string
        elif kind == "page_not_found":
            self.errors.append(f"[/{self.path}] page not found: {msg.page_not_found.page_name!r}")
        elif kind == "auto_rerun":
            self.auto[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                self.auto.pop(fid, None)
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._element(tuple(msg.metadata.delta_path), msg.delta.new_element, msg.metadata.active_script_hash)
        elif kind == "script_finished" and msg.script_finished in FULL_RUN_DONE:
            # What the browser's cache does after each run: forget messages unused for max_age runs.
            self.cache = {h: v for h, v in self.cache.items() if self.runs - v[1] <= self.max_age}
        return msg

    def _set_page(self, page_hash: str) -> None:
        if page_hash:
            self.page_hash = page_hash
            self.path = next((p.url_pathname for p in self.pages if p.page_script_hash == page_hash), self.path)

    def _element(self, path: tuple, el, script_hash: str) -> None:
        self.elements[path] = (el, script_hash)
        kind = el.WhichOneof("type")
        if kind == "exception":
            text = f"[/{self.path}] " + ": ".join(filter(None, [el.exception.type, first_line(el.exception.message)]))
            if (self.runs, path, text) not in self._seen:
                self._seen.add((self.runs, path, text))
                self.exceptions.append(text)
        elif kind == "alert" and el.alert.format == Alert.ERROR:
            text = f"[/{self.path}] {first_line(el.alert.body)}"
            if (self.runs, path, text) not in self._seen:
                self._seen.add((self.runs, path, text))
                self.errors.append(text)

    def find(self, kind: str, label: str | None = None):
        """The first element of ``kind`` (with ``label``, if given) in this run's output."""
        for el, _ in self.elements.values():
            if el.WhichOneof("type") == kind and (label is None or getattr(el, kind).label == label):
                return getattr(el, kind)
        return None

    def alerts(self, area: int = 0) -> list[str]:
        """Texts of the alerts in the main area (0) or the sidebar (1), in page order."""
        return [el.alert.body for p, (el, _) in sorted(self.elements.items())
                if p and p[0] == area and el.WhichOneof("type") == "alert"]

    # --- runs -------------------------------------------------------------------------------------
    def _rerun_msg(self, page_hash: str = "", page_name: str = "", fragment_id: str = "",
                   auto: bool = False, extra: list[WidgetState] = ()) -> BackMsg:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.qs
        cs.page_script_hash = page_hash
        cs.page_name = page_name
        cs.fragment_id = fragment_id
        cs.is_auto_rerun = auto
        cs.cached_message_hashes.extend(self.cache)
        cs.widget_states.widgets.extend([*self.widgets.values(), *extra])
        ci = cs.context_info
        ci.timezone, ci.timezone_offset, ci.locale = "UTC", 0, "en-US"
        ci.url, ci.is_embedded, ci.color_scheme = self._url(page_name or self.path), False, "light"
        return msg

    async def _until_finished(self, deadline: float, fragment: bool = False) -> None:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                while True:
                    msg = await self._recv()
                    if msg.WhichOneof("type") == "script_finished" and (
                            msg.script_finished in FULL_RUN_DONE
                            or (fragment and msg.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)):
                        return
        except TimeoutError:
            raise PageTimeout(f"[/{self.path}] no script_finished within {self.page_timeout:g} s") from None

    async def run_page(self, path: str | None = None, extra: list[WidgetState] = (),
                       record: bool = True) -> float:
        """Show a page: the deep link ``path`` on a fresh connection, else a navigation click (or,
        with ``path=None``, a rerun of the current page). Returns seconds to script_finished."""
        target = self.path if path is None else path
        page = next((p for p in self.pages if p.url_pathname == target), None)
        if self.runs == 0 or (page is None and path is not None):
            msg = self._rerun_msg(page_name=target, extra=extra)  # a deep link: the URL names the page
        else:
            if page is not None and page.page_script_hash != self.page_hash:
                self._leave_page()
            msg = self._rerun_msg(page.page_script_hash if page else self.page_hash, extra=extra)
        t0 = time.monotonic()
        await self._send(msg)
        await self._until_finished(t0 + self.page_timeout)
        seconds = time.monotonic() - t0
        self._prune_widgets()
        if record:
            self.visits.append(Visit(self.path, seconds))
        if self.fetch_media:
            await self._media()
        return seconds

    def _leave_page(self) -> None:
        """A navigation click: the browser keeps only the widgets app.py itself drew, and only the
        query parameters bound to widgets (WidgetStateManager.filterParamsForPageChange)."""
        self.auto.clear()
        keep = {getattr(el, el.WhichOneof("type")).id for el, h in self.elements.values()
                if h == self.main_hash and el.WhichOneof("type") in WIDGET_TYPES}
        self.widgets = {k: v for k, v in self.widgets.items() if k in keep}
        bound = {getattr(el, el.WhichOneof("type")).query_param_key for el, _ in self.elements.values()
                 if el.WhichOneof("type") in WIDGET_TYPES
                 and hasattr(getattr(el, el.WhichOneof("type")), "query_param_key")}
        kept = [kv for kv in self.qs.split("&") if kv and kv.split("=", 1)[0] in bound]
        if self.keep_query:  # not a browser: every parameter of the deep link, whatever the server said
            have = {kv.split("=", 1)[0] for kv in kept}
            kept += [urlencode({k: v}) for k, v in self.query.items() if k not in have]
        self.qs = "&".join(kept)

    def _prune_widgets(self) -> None:
        ids = {getattr(el, el.WhichOneof("type")).id for el, _ in self.elements.values()
               if el.WhichOneof("type") in WIDGET_TYPES}
        self.widgets = {k: v for k, v in self.widgets.items() if k in ids}

    async def _media(self) -> None:
        """Fetch the page's images, as the browser's <img> tags do once the deltas arrive."""
        urls = {img.url for el, _ in self.elements.values() if el.WhichOneof("type") == "imgs"
                for img in el.imgs.imgs if img.url.startswith("/")}
        for url in urls - self._seen:
            self._seen.add(url)
            try:
                status, _ = await http(self.base + url, self.jar, timeout=self.page_timeout)
                self.media_failures += not 200 <= status < 300
            except (OSError, TimeoutError):
                self.media_failures += 1

    async def upload(self, name: str, data: bytes, label: str | None = None) -> tuple[float, float] | None:
        """Upload ``data`` through the page's file_uploader as the browser does, then rerun with it.

        Returns:
            Seconds from the request for an upload URL to the end of the rerun, and seconds of the
            rerun alone; None when the upload failed (counted in ``upload_failures``).
        """
        uploader = self.find("file_uploader", label)
        if uploader is None:
            self.warnings.append(f"[/{self.path}] no file_uploader{f' {label!r}' if label else ''} on the page")
            self.upload_failures += 1
            return None
        t0 = time.monotonic()
        ask = BackMsg()
        ask.file_urls_request.request_id = rid = uuid.uuid4().hex
        ask.file_urls_request.session_id = self.session_id
        ask.file_urls_request.file_names.append(name)
        await self._send(ask)
        deadline = t0 + self.page_timeout
        while True:
            msg = await self._recv(deadline)
            if msg.WhichOneof("type") == "file_urls_response" and msg.file_urls_response.response_id == rid:
                break
        reply = msg.file_urls_response
        if reply.error_msg or not reply.file_urls:
            self.upload_failures += 1
            self.errors.append(f"[/{self.path}] file_urls_response: {first_line(reply.error_msg)}")
            return None
        urls: FileURLs = reply.file_urls[0]
        boundary = uuid.uuid4().hex
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        url = urls.upload_url if "://" in urls.upload_url else self.base + "/" + urls.upload_url.lstrip("/")
        status, text = await http(url, self.jar, "PUT", body, timeout=self.page_timeout, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "Origin": self.base,
            "X-Xsrftoken": self.jar.values.get("_streamlit_xsrf", "")})
        if not 200 <= status < 300:
            self.upload_failures += 1
            self.errors.append(f"[/{self.path}] upload PUT HTTP {status}: {first_line(text.decode('utf-8', 'replace'))}")
            return None
        state = WidgetState(id=uploader.id)
        state.file_uploader_state_value.uploaded_file_info.append(
            UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id, file_urls=urls))
        self.widgets[uploader.id] = state
        rerun = await self.run_page(None, record=False)
        return time.monotonic() - t0, rerun

    async def press(self, label: str) -> bool:
        """Click the button labelled ``label`` (a one-run trigger value); False if there is none."""
        button = self.find("button", label)
        if button is None or button.disabled:
            return False
        await self.run_page(None, extra=[WidgetState(id=button.id, trigger_value=True)], record=False)
        return True

    async def watch(self, seconds: float) -> None:
        """Stay on the page for ``seconds`` and note the main-area alerts it shows (a training run's
        status line). Fragments with run_every get a rerun every interval, as the browser's
        setInterval sends them: whether or not the previous one has finished."""
        end = time.monotonic() + seconds
        due: dict[str, float] = {}
        while (now := time.monotonic()) < end:
            due = {f: due.get(f, now + i) for f, i in self.auto.items()}
            for fid, t in due.items():
                if t <= now:
                    await self._send(self._rerun_msg(self.page_hash, fragment_id=fid, auto=True))
                    due[fid] = max(t + self.auto[fid], now)
            for text in self.alerts(0):
                if not self.statuses or self.statuses[-1] != text:
                    self.statuses.append(text)
            try:
                await self._recv(min([end, *due.values()]) + 0.01)
            except PageTimeout:
                pass


def queue_position(text: str) -> int | None:
    """The number in the train page's "Queued: **N** in line" status, if that is what ``text`` is."""
    m = re.match(r"\s*Queued:\s*\**(\d+)", text)
    return int(m.group(1)) if m else None
