"""The waiting crowd: N SSE waiters on one API process, each for its own command.

With the reactor stopped, N commands are accepted and N per-command event
streams opened (plain sockets: the crowd must not be limited by the client
library); the API's memory is read before and after. Then the reactor starts
and every waiter must receive its notice. Latency is from the reactor's start
to each notice's arrival: the time to drain N waiting notices; and from the
last notice the reactor sent (the `sent` timing it carries) to the last
arrival: how long the fan-out trails the reactor.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import msgspec

from bench.stack import rss_bytes
from tests.processes import Stack


@dataclass
class CrowdResult:
    waiters: int
    received: int
    rss_before: int
    rss_with_waiters: int
    latencies: list[float]
    drain_s: float
    after_last_notice_s: float  # the last arrival, after the last notice the reactor sent

    @property
    def bytes_per_waiter(self) -> float:
        return (self.rss_with_waiters - self.rss_before) / self.waiters


async def _accept_commands(url: str, n: int) -> list[str]:
    ids: list[str] = []
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        semaphore = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            async with semaphore:
                body = {"name": f"crowd {time.time_ns():x} {i}", "category": "Town"}
                response = await client.post("/api/locations", json=body)
                response.raise_for_status()
                ids.append(response.json()["command_id"])

        await asyncio.gather(*(one(i) for i in range(n)))
    return ids


class _Sent(msgspec.Struct):
    timings: dict[str, float]


_sent_decoder = msgspec.json.Decoder(_Sent)


class Waiter:
    def __init__(self, host: str, port: int, command_id: str) -> None:
        self.host, self.port, self.command_id = host, port, command_id
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(
            f"GET /api/commands/{self.command_id}/events?timeout=300 HTTP/1.1\r\n"
            f"Host: {self.host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await self.writer.drain()
        await self.reader.readuntil(b": stream open")  # the stream is up and registered

    async def notice(self) -> tuple[float, float]:
        """When the notice arrived, and when the reactor sent it."""
        assert self.reader is not None
        await self.reader.readuntil(b"event: succeeded")
        arrived = time.time()
        block = await self.reader.readuntil(b"\n\n")
        data = next(line for line in block.split(b"\n") if line.startswith(b"data:"))
        return arrived, _sent_decoder.decode(data[5:]).timings["sent"]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def waiting_crowd(stack: Stack, n: int) -> CrowdResult:
    stack.reactor.stop()
    url = urlsplit(stack.url)
    assert url.hostname is not None
    assert url.port is not None
    ids = await _accept_commands(stack.url, n)
    rss_before = rss_bytes(stack.api.pid)
    waiters = [Waiter(url.hostname, url.port, command_id) for command_id in ids]
    semaphore = asyncio.Semaphore(256)

    async def open_one(waiter: Waiter) -> None:
        async with semaphore:
            await waiter.open()

    try:
        await asyncio.gather(*(open_one(w) for w in waiters))
        rss_with = rss_bytes(stack.api.pid)
        receiving = [asyncio.create_task(w.notice()) for w in waiters]
        started = time.time()
        await asyncio.to_thread(stack.reactor.start)
        done = await asyncio.wait_for(asyncio.gather(*receiving, return_exceptions=True), 300)
    finally:
        for waiter in waiters:
            waiter.close()
    got = [t for t in done if isinstance(t, tuple)]
    arrivals = [arrived for arrived, _ in got]
    return CrowdResult(
        waiters=n,
        received=len(arrivals),
        rss_before=rss_before,
        rss_with_waiters=rss_with,
        latencies=[t - started for t in arrivals],
        drain_s=max(arrivals) - started if arrivals else float("nan"),
        after_last_notice_s=(max(arrivals) - max(sent for _, sent in got) if got else float("nan")),
    )
