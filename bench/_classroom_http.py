"""HTTP for bench/classroom.py: a browser's cookie jar and one HTTP/1.1 request on asyncio streams.

Plain asyncio rather than a client library: Streamlit 1.67 no longer brings tornado, requests is
synchronous, and a student waiting on a slow server must not hold a thread.
"""
from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit


class CookieJar:
    """Every cookie any response set, by name (one host, so paths and domains do not matter)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def absorb(self, set_cookie_headers: list[str]) -> None:
        for header in set_cookie_headers:
            pair, *attrs = header.split(";")
            name, _, value = pair.strip().partition("=")
            expired = any(a.strip().lower().replace(" ", "") in ("max-age=0", "max-age=-1") for a in attrs)
            if expired:
                self.values.pop(name, None)
            elif name:
                self.values[name] = value.strip()

    def header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.values.items())


async def http(url: str, jar: CookieJar, method: str = "GET", body: bytes = b"",
               headers: dict | None = None, timeout: float = 30) -> tuple[int, bytes]:
    """One HTTP/1.1 request with the jar's cookies; the jar takes the reply's Set-Cookie headers.

    Returns:
        (status, body). A connection error raises OSError (or TimeoutError).
    """
    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {u.netloc}", "User-Agent: classroom-bench",
             "Accept: */*", "Accept-Encoding: gzip", "Connection: close"]
    if jar.values:
        lines.append(f"Cookie: {jar.header()}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("PUT", "POST"):
        lines.append(f"Content-Length: {len(body)}")
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            u.hostname, port, ssl=ssl.create_default_context() if u.scheme == "https" else None)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            raw = await reader.read()  # Connection: close, so the body ends with the stream
        finally:
            writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"bad HTTP reply from {url}: {status_line[:80]!r}")
    jar.absorb([h.split(":", 1)[1].strip() for h in header_lines if h.lower().startswith("set-cookie:")])
    return int(parts[1]), rest
