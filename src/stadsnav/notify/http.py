"""POSTing notifications: a small HTTP/1.1 client on asyncio streams that keeps connections
alive per origin.

Notifications are many small POSTs to a few receivers, so what a request costs besides the
socket matters: a general client (httpx) spends more on its pool bookkeeping per request than
on the request itself. This one does only what delivery needs: POST with a body of known
length, a time limit for the whole exchange, http and https (certificates checked against the
system's trust store), redirects not followed, and the answer's status; the answer's body is
read (Content-Length, chunked, or up to the close) and dropped. A connection idle in the pool
that turns out to be closed by the receiver is retried once on a new one: a notification may
then arrive twice, as at-least-once allows.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import urlsplit

Origin = tuple[str, str, int]  # scheme, host, port

_MAX_HEAD = 64 * 1024  # bytes of an answer's status line and headers at most
_MAX_BODY = 1024 * 1024  # bytes of an answer's body read to keep the connection; else closed


class HttpFailed(Exception):
    """The exchange failed: no connection, a broken answer, or the connection closed early."""


class _Stale(Exception):
    """A pooled connection was closed by the receiver before it answered anything."""


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float, idle_timeout: float) -> bool:
        return (
            now - self.idle_since < idle_timeout
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        self.writer.close()


class HttpClient:
    def __init__(self, *, idle_timeout: float = 4.0, idle_per_origin: int = 128) -> None:
        # Kept below the 5 s a typical server (uvicorn, nginx 75 s) keeps an idle one open.
        self.idle_timeout = idle_timeout
        self.idle_per_origin = idle_per_origin
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str], limit: float) -> int:
        """POST `body` to `url`; the answer's status code. HttpFailed, or TimeoutError when the
        whole exchange takes longer than `limit` seconds."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise HttpFailed(f"Not an http(s) URL: {url}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as error:
            raise HttpFailed(str(error)) from None
        origin = (scheme, parts.hostname, port)
        request = _request(parts.hostname, parts.port, parts.path, parts.query, headers, body)
        async with asyncio.timeout(limit):
            while True:
                conn = self._take(origin)
                reused = conn is not None
                if conn is None:
                    conn = await self._open(origin)
                try:
                    status, keep = await _exchange(conn, request, reused)
                except _Stale:
                    conn.close()
                    continue  # the receiver closed it while idle: once more on a new one
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
                    conn.close()
                    raise HttpFailed(f"{type(error).__name__}: {error}") from None
                except BaseException:
                    conn.close()
                    raise
                if keep:
                    self._give_back(origin, conn)
                else:
                    conn.close()
                return status

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _take(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            if conn.usable(now, self.idle_timeout):
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
        conns = self._idle.setdefault(origin, [])
        if len(conns) >= self.idle_per_origin:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns.append(conn)

    async def _open(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if context else None, limit=_MAX_HEAD
            )
        except (OSError, ssl.SSLError) as error:
            raise HttpFailed(f"{type(error).__name__}: {error}") from None
        return _Connection(reader, writer)


def _request(
    host: str, port: int | None, path: str, query: str, headers: dict[str, str], body: bytes
) -> bytes:
    target = (path or "/") + (f"?{query}" if query else "")
    authority = f"[{host}]" if ":" in host else host
    if port is not None:
        authority = f"{authority}:{port}"
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {authority}",
        "User-Agent: stadsnav",
        "Accept: */*",
        f"Content-Length: {len(body)}",
    ]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise HttpFailed(f"Header {name!r} cannot be sent")
        lines.append(f"{name}: {value}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode() + body


async def _exchange(conn: _Connection, request: bytes, reused: bool) -> tuple[int, bool]:
    """Send the request, read the answer; its status and whether the connection stays open."""
    reader, writer = conn.reader, conn.writer
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        if reused and (not isinstance(error, asyncio.IncompleteReadError) or not error.partial):
            raise _Stale from None
        raise
    while True:
        status, version, fields = _parse_head(head)
        if not 100 <= status < 200 or status == 101:
            break
        head = await reader.readuntil(b"\r\n\r\n")  # 100 Continue and the like: skip
    connection = fields.get("connection", "").lower()
    keep = version == "HTTP/1.1" and "close" not in connection
    if status in (204, 304):
        return status, keep
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, keep and await _drop_chunked(reader)
    length_text = fields.get("content-length")
    if length_text is None:
        # Delimited by the close: read what comes, up to a limit.
        await reader.read(_MAX_BODY)
        return status, False
    try:
        length = int(length_text)
    except ValueError:
        raise HttpFailed("Bad Content-Length in the answer") from None
    if length > _MAX_BODY:
        return status, False
    if length:
        await reader.readexactly(length)
    return status, keep


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
        raise HttpFailed(f"Not an HTTP answer: {lines[0][:80]!r}")
    try:
        status = int(status_line[1])
    except ValueError:
        raise HttpFailed(f"Not an HTTP status: {lines[0][:80]!r}") from None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return status, status_line[0], fields


async def _drop_chunked(reader: asyncio.StreamReader) -> bool:
    """Read a chunked body and drop it; False when it is too long to bother."""
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpFailed("Bad chunk in the answer") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return True
        total += size
        if total > _MAX_BODY:
            return False
        await reader.readexactly(size + 2)
