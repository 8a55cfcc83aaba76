"""A lean HTTP/1.1 client for the load generator: keep-alive connections on asyncio streams.

httpx costs about a millisecond of CPU per request, which on a 2-core machine
takes CPU from the very processes being measured. This does only what the
benchmark needs: requests with a Content-Length body, responses with a
Content-Length body, and one chunked SSE response read line by line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

IDLE_FOR = 4.0  # seconds a kept-alive connection is used again after its last answer


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return status, headers


class Client:
    """Requests to one origin over a pool of keep-alive connections, with a cookie."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        self.host, self.port = parts.hostname, parts.port
        self.cookie = ""
        # Keep-alive connections with when each went idle: uvicorn closes one idle for
        # 5 s, and a request sent on it as it closes gets no answer.
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since < IDLE_FOR:
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    def _head(self, method: str, path: str, extra: dict[str, str], length: int | None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.cookie:
            lines.append(f"Cookie: {self.cookie}")
        if length is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        reader, writer = await self._connection()
        writer.write(
            self._head(method, path, headers or {}, None if body is None else len(body))
            + (body or b"")
        )
        status, response_headers = await _read_head(reader)
        data = await reader.readexactly(int(response_headers.get("content-length", "0")))
        if "sid=" in response_headers.get("set-cookie", ""):
            self.cookie = response_headers["set-cookie"].split(";", 1)[0]
        if response_headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.append((reader, writer, time.monotonic()))
        return Response(status, response_headers, data)

    async def events(self, path: str) -> AsyncIterator[tuple[str, str, str]]:
        """(event, data, id) of a text/event-stream response, as they come."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(self._head("GET", path, {"Accept": "text/event-stream"}, None))
            status, headers = await _read_head(reader)
            if status != 200:
                raise RuntimeError(f"event stream answered {status}")
            assert headers.get("transfer-encoding") == "chunked"
            buffered = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    return
                buffered += await reader.readexactly(size)
                await reader.readexactly(2)
                *blocks, buffered = buffered.split(b"\n\n")
                for block in blocks:
                    fields = {"event": "message", "data": "", "id": ""}
                    for line in block.decode().split("\n"):
                        key, sep, value = line.partition(": ")
                        if sep and key in fields:
                            fields[key] = value
                    if fields["data"]:
                        yield fields["event"], fields["data"], fields["id"]
        finally:
            writer.close()

    def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()
