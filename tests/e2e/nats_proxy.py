"""A TCP proxy between a process and nats-server that can lose a publish or its ack.

It reads the NATS protocol both ways frame by frame (`PUB`/`HPUB` and
`MSG`/`HMSG` with their payloads, every other operation one line), so a fault
can be aimed at subjects: publishes to them never reach the server
(`drop_publishes`), or they do and are stored but the server's acknowledgement
never comes back (`lose_acks`), as when a connection fails right after a write.
Everything else passes untouched."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

CRLF = b"\r\n"
WITH_PAYLOAD = (b"PUB", b"HPUB", b"MSG", b"HMSG")


class NatsProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.dropped: list[str] = []  # the subjects of the publishes dropped
        self.acks_lost: list[str] = []  # the subjects of the publishes whose ack was lost
        self._drop: str | None = None
        self._lose: str | None = None
        self._lose_left = 0
        self._lost_replies: set[str] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return f"nats://127.0.0.1:{port}"

    def drop_publishes(self, prefix: str) -> None:
        """Publishes to subjects starting with `prefix` never reach the server."""
        self._drop = prefix

    def lose_acks(self, prefix: str, times: int = 1_000_000) -> None:
        """The next `times` publishes to subjects starting with `prefix` reach the
        server (and are stored); the server's reply to each never reaches the client."""
        self._lose, self._lose_left = prefix, times

    def heal(self) -> None:
        self._drop = self._lose = None

    async def start(self) -> NatsProxy:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _connected(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [client_w, server_w]
        for pump in (
            _pump(client_r, server_w, self._from_client),
            _pump(server_r, client_w, self._from_server),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _from_client(self, words: list[bytes]) -> bool:
        """Whether the client's frame goes on to the server."""
        if not words or words[0].upper() not in (b"PUB", b"HPUB"):
            return True
        subject = words[1].decode()
        if self._drop is not None and subject.startswith(self._drop):
            self.dropped.append(subject)
            return False
        has_reply = len(words) == (4 if words[0].upper() == b"PUB" else 5)
        if self._lose is not None and subject.startswith(self._lose) and has_reply:
            self._lost_replies.add(words[2].decode())
            self.acks_lost.append(subject)
            self._lose_left -= 1
            if self._lose_left == 0:
                self._lose = None
        return True

    def _from_server(self, words: list[bytes]) -> bool:
        """Whether the server's frame goes on to the client."""
        if not words or words[0].upper() not in (b"MSG", b"HMSG"):
            return True
        return words[1].decode() not in self._lost_replies


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    passes: Callable[[list[bytes]], bool],
) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            frame = await reader.readuntil(CRLF)
            words = frame.split()
            if words and words[0].upper() in WITH_PAYLOAD:
                frame += await reader.readexactly(int(words[-1]) + len(CRLF))
            if passes(words):
                writer.write(frame)
                await writer.drain()
    writer.close()


@asynccontextmanager
async def nats_proxy(upstream_port: int) -> AsyncIterator[NatsProxy]:
    proxy = await NatsProxy(upstream_port).start()
    try:
        yield proxy
    finally:
        await proxy.stop()
