"""A TCP proxy between a process and nats-server that can lose a publish, its ack or a delivery.

It reads the NATS protocol both ways frame by frame (`PUB`/`HPUB` and
`MSG`/`HMSG` with their payloads, every other operation one line), so a fault
can be aimed at subjects: publishes to them never reach the server
(`drop_publishes`), or they do and are stored but the server's acknowledgement
never comes back (`lose_acks`), as when a connection fails right after a write;
or messages the server delivers on a subject are lost (`drop_deliveries`) or
held back and sent late (`hold_deliveries`, `release`).
Everything else passes untouched. It can also cut the client off for a while
(`cut`, `reopen`) while the server goes on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

from tests.processes import Process

CRLF = b"\r\n"
WITH_PAYLOAD = (b"PUB", b"HPUB", b"MSG", b"HMSG")


@dataclass
class Fault:
    """Strikes the next `left` subjects starting with `prefix` (none while unarmed)."""

    prefix: str | None = None
    left: int = 0
    struck: list[str] = field(default_factory=list)  # the subjects struck, in order

    def arm(self, prefix: str, times: int) -> None:
        self.prefix, self.left = prefix, times

    def strikes(self, subject: str) -> bool:
        if self.prefix is None or not subject.startswith(self.prefix):
            return False
        self.struck.append(subject)
        self.left -= 1
        if self.left == 0:
            self.prefix = None
        return True


class NatsProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._drop, self._lose, self._deliveries, self._hold = Fault(), Fault(), Fault(), Fault()
        self._held: list[tuple[asyncio.StreamWriter, bytes]] = []
        self._lost_replies: set[str] = set()
        self._refusing = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def dropped(self) -> list[str]:
        """The subjects of the publishes dropped."""
        return self._drop.struck

    @property
    def acks_lost(self) -> list[str]:
        """The subjects of the publishes whose ack was lost."""
        return self._lose.struck

    @property
    def deliveries_dropped(self) -> list[str]:
        """The subjects of the messages to the client dropped."""
        return self._deliveries.struck

    @property
    def url(self) -> str:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return f"nats://127.0.0.1:{port}"

    def drop_publishes(self, prefix: str, times: int = 1_000_000) -> None:
        """The next `times` publishes to subjects starting with `prefix` never reach the
        server."""
        self._drop.arm(prefix, times)

    def lose_acks(self, prefix: str, times: int = 1_000_000) -> None:
        """The next `times` publishes to subjects starting with `prefix` reach the
        server (and are stored); the server's reply to each never reaches the client."""
        self._lose.arm(prefix, times)

    def drop_deliveries(self, prefix: str, times: int = 1_000_000) -> None:
        """The next `times` messages on subjects starting with `prefix` that the server
        sends this client are lost (core NATS delivers at most once)."""
        self._deliveries.arm(prefix, times)

    def hold_deliveries(self, prefix: str, times: int = 1_000_000) -> None:
        """The next `times` messages on subjects starting with `prefix` that the server
        sends this client are held back until `release()` (late, after later ones)."""
        self._hold.arm(prefix, times)

    def release(self) -> None:
        """Send on what was held, in order."""
        for writer, frame in self._held:
            writer.write(frame)
        self._held.clear()

    @property
    def held(self) -> list[str]:
        """The subjects of the messages held back so far."""
        return self._hold.struck

    def heal(self) -> None:
        for fault in (self._drop, self._lose, self._deliveries, self._hold):
            fault.prefix = None

    def cut(self) -> None:
        """Close every connection, and refuse new ones until `reopen()`: the client
        is disconnected while the server goes on."""
        self._refusing = True
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def reopen(self) -> None:
        self._refusing = False

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
        if self._refusing:
            client_w.close()
            return
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [client_w, server_w]
        for pump in (
            _pump(client_r, server_w, lambda words, _: self._from_client(words)),
            _pump(server_r, client_w, partial(self._from_server, client_w)),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _from_client(self, words: list[bytes]) -> bool:
        """Whether the client's frame goes on to the server."""
        if not words or words[0].upper() not in (b"PUB", b"HPUB"):
            return True
        subject = words[1].decode()
        if self._drop.strikes(subject):
            return False
        has_reply = len(words) == (4 if words[0].upper() == b"PUB" else 5)
        if has_reply and self._lose.strikes(subject):
            self._lost_replies.add(words[2].decode())
        return True

    def _from_server(self, writer: asyncio.StreamWriter, words: list[bytes], frame: bytes) -> bool:
        """Whether the server's frame goes on to the client now."""
        if not words or words[0].upper() not in (b"MSG", b"HMSG"):
            return True
        subject = words[1].decode()
        if self._hold.strikes(subject):
            self._held.append((writer, frame))
            return False
        return subject not in self._lost_replies and not self._deliveries.strikes(subject)


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    passes: Callable[[list[bytes], bytes], bool],
) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            frame = await reader.readuntil(CRLF)
            words = frame.split()
            if words and words[0].upper() in WITH_PAYLOAD:
                frame += await reader.readexactly(int(words[-1]) + len(CRLF))
            if passes(words, frame):
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


@asynccontextmanager
async def behind_proxy(
    upstream_port: int, process: Callable[[str], Process]
) -> AsyncIterator[tuple[NatsProxy, Process]]:
    """A process (made for a NATS URL) that reaches nats-server through a proxy; started
    and stopped off the event loop, which the proxy runs on."""
    async with nats_proxy(upstream_port) as proxy:
        started = await asyncio.to_thread(process(proxy.url).start)
        try:
            yield proxy, started
        finally:
            await asyncio.to_thread(started.stop)
