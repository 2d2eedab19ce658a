"""A minimal Streamlit browser session for the load tests (tests/load): cookies, the websocket, one upload.

It speaks the same protocol as Streamlit's frontend, through whatever balancer is in front:

1. ``GET /_stcore/health`` sets the XSRF cookie (and the balancer's affinity cookie);
2. the websocket ``/_stcore/stream`` (XSRF token in the subprotocol header) creates the
   session, and a ``rerun_script`` back-message makes the server announce its id;
3. a ``file_urls_request`` asks for an upload URL, and ``PUT`` sends the file there: the step
   that fails with "Invalid session_id" when the balancer is not sticky.
"""
from __future__ import annotations

import asyncio
import http.cookiejar
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect


@dataclass
class Reply:
    """One HTTP answer: status, body and the replica HAProxy says served it (X-Served-By)."""

    status: int
    body: bytes
    served_by: str | None


@dataclass
class Student:
    """One browser: a cookie jar shared by its HTTP requests and its websocket."""

    base: str
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __post_init__(self) -> None:
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def request(self, path: str, data: bytes | None = None, method: str = "GET",
                headers: dict | None = None, timeout: float = 30) -> Reply:
        """An HTTP request with this student's cookies; HTTP errors are returned, not raised."""
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with self._opener.open(req, timeout=timeout) as r:
                return Reply(r.status, r.read(), r.headers.get("X-Served-By"))
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.read(), e.headers.get("X-Served-By"))

    def upload(self, name: str, payload: bytes, timeout: float = 60) -> tuple[Reply, str]:
        """Open a session, upload ``payload`` as ``name`` the way st.file_uploader does.

        Returns:
            The PUT's reply (204 when the file reached the session) and the session id.
        """
        return asyncio.run(asyncio.wait_for(self._upload(name, payload), timeout))

    async def _upload(self, name: str, payload: bytes) -> tuple[Reply, str]:
        if self.cookie("_streamlit_xsrf") is None:
            self.request("/_stcore/health")
        xsrf = self.cookie("_streamlit_xsrf")
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        ws_url = "ws" + self.base[len("http"):] + "/_stcore/stream"
        async with connect(ws_url, subprotocols=["streamlit", xsrf], max_size=None,
                           additional_headers={"Cookie": cookies, "Origin": self.base}) as ws:
            hello = BackMsg()
            hello.rerun_script.query_string = ""
            await ws.send(hello.SerializeToString())
            session_id = await self._next(ws, "new_session")
            session_id = session_id.new_session.initialize.session_id
            ask = BackMsg()
            ask.file_urls_request.request_id = uuid.uuid4().hex
            ask.file_urls_request.session_id = session_id
            ask.file_urls_request.file_names.append(name)
            await ws.send(ask.SerializeToString())
            urls = (await self._next(ws, "file_urls_response")).file_urls_response.file_urls[0]
            boundary = uuid.uuid4().hex
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + \
                f"\r\n--{boundary}--\r\n".encode()
            path = urls.upload_url if urls.upload_url.startswith("/") else "/" + urls.upload_url
            reply = await asyncio.to_thread(
                self.request, path, body, "PUT",
                {"X-Xsrftoken": xsrf, "Content-Type": f"multipart/form-data; boundary={boundary}"})
            return reply, session_id

    @staticmethod
    async def _next(ws, kind: str) -> ForwardMsg:
        """The next forward-message of type ``kind``, skipping the rest (deltas, status...)."""
        async for raw in ws:
            if isinstance(raw, bytes):
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                if msg.WhichOneof("type") == kind:
                    return msg
        raise ConnectionError(f"websocket closed before a {kind} message")
