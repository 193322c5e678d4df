"""A minimal HTTP/1.1 keep-alive client for load generation: one asyncio Protocol per connection,
responses parsed by `httptools` (the C parser uvicorn uses).

Why not httpx: on a 2-core machine the load generator shares the CPU with the servers it measures, so
every microsecond the client spends per request is taken from them. `bench/clients.py` measures both
(CPU per request against the same server) and the report quotes the figures. This client only does what
the benchmark needs: GET (and POST with a body) with fixed headers on a connection that is reused, one
request in flight per connection (like wrk: concurrency = connections)."""

from __future__ import annotations

import asyncio

import httptools


class HttpError(Exception):
    """A response the client could not use (status line or framing)."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future | None = None
        self._body: list[bytes] = []
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError(f"connection lost: {exc}"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        body, self._body = b"".join(self._body), []
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), body))
        if not self._parser.should_keep_alive():
            self.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, raw: bytes) -> asyncio.Future:
        if self.closed or self._transport is None:
            raise HttpError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class Http1Client:
    """One keep-alive connection to host:port; `get(path)` and `post(path, body)` return (status, body)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"host": f"{host}:{port}", **headers}.items())
        self._conn: _Connection | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self._conn = await loop.create_connection(_Connection, self.host, self.port)

    async def get(self, path: str) -> tuple[int, bytes]:
        if self._conn is None or self._conn.closed:
            await self.connect()
        raw = f"GET {path} HTTP/1.1\r\n{self._head}\r\n".encode()
        return await self._conn.send(raw)

    async def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        if self._conn is None or self._conn.closed:
            await self.connect()
        head = f"POST {path} HTTP/1.1\r\n{self._head}content-type: {content_type}\r\n"
        head += f"content-length: {len(body)}\r\n\r\n"
        return await self._conn.send(head.encode() + body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
