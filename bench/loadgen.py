"""Open-loop load over real HTTP and SSE, as browsers would make it.

Commands are sent on a fixed schedule (open loop: a slow answer does not slow
the sending, so queueing shows up as latency instead of hiding). Each browser
session holds one session event stream (`/api/events`); a command's latency
is from just before its POST is sent to the arrival of its notice on that
stream, or, with `Prefer: wait`, to the arrival of the 201.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bench.rawhttp import Client, Response
from contracts.notices import Notice, notice_decoder


@dataclass
class Sample:
    sent: float  # time.time() just before the POST
    done: float = 0.0  # notice (or 201) received
    publish_ms: float = 0.0  # Server-Timing of the 202
    notice: Notice | None = None

    @property
    def latency(self) -> float:
        return self.done - self.sent


@dataclass
class Result:
    target_rate: float
    duration: float
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0  # first send to last completion
    cpu: float = 0.0  # this process's CPU time over the run
    others: dict[str, float] = field(default_factory=dict)  # cores used by the other processes

    @property
    def latencies(self) -> list[float]:
        return [s.latency for s in self.samples]

    @property
    def achieved_rate(self) -> float:
        return len(self.samples) / self.wall if self.wall else 0.0

    @property
    def generator_cpu_share(self) -> float:
        """Cores' worth of CPU the load generator used (1.0 = one core)."""
        return self.cpu / self.wall if self.wall else 0.0


class Session:
    """A browser session: its cookie, its HTTP connections and its event stream."""

    def __init__(self, url: str) -> None:
        self.client = Client(url)
        self.arrived: dict[str, tuple[float, Notice]] = {}
        self.waiting: dict[str, asyncio.Future[tuple[float, Notice]]] = {}
        # Notices of policy commands, by the command that caused them.
        self.arrived_caused: dict[str, tuple[float, Notice]] = {}
        self.waiting_caused: dict[str, asyncio.Future[tuple[float, Notice]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Session:
        await self.client.request("GET", "/healthz")  # the session cookie
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        self.client.close()

    async def _read(self) -> None:
        async for event, data, _ in self.client.events("/api/events"):
            now = time.time()
            if event == "connected":
                self._ready.set()
            elif event in ("succeeded", "failed"):
                notice = notice_decoder.decode(data)
                _arrive(self.waiting, self.arrived, notice.command_id, (now, notice))
                if notice.caused_by is not None:
                    _arrive(
                        self.waiting_caused, self.arrived_caused, notice.caused_by, (now, notice)
                    )

    async def notice_of(self, command_id: str, within: float = 30.0) -> tuple[float, Notice]:
        """When the command's notice arrived, and the notice."""
        return await _await(self.waiting, self.arrived, command_id, within)

    async def notice_caused_by(self, command_id: str, within: float = 30.0) -> tuple[float, Notice]:
        """When the notice of a command a policy sent because of `command_id` arrived."""
        return await _await(self.waiting_caused, self.arrived_caused, command_id, within)


Arrival = tuple[float, Notice]


def _arrive(
    waiting: dict[str, asyncio.Future[Arrival]], arrived: dict[str, Arrival], key: str, got: Arrival
) -> None:
    waiter = waiting.pop(key, None)
    if waiter is not None and not waiter.done():
        waiter.set_result(got)
    else:
        arrived[key] = got  # before anyone asked (the notice beat the POST's answer)


async def _await(
    waiting: dict[str, asyncio.Future[Arrival]],
    arrived: dict[str, Arrival],
    key: str,
    within: float,
) -> Arrival:
    if key in arrived:
        return arrived.pop(key)
    future: asyncio.Future[Arrival] = asyncio.get_running_loop().create_future()
    waiting[key] = future
    return await asyncio.wait_for(future, within)


def _publish_ms(response: Response) -> float:
    timing = response.headers.get("server-timing", "")
    return float(timing.partition("dur=")[2] or 0)


async def one_command(session: Session, i: int, run: str, prefer_wait: int | None) -> Sample:
    headers = {"Prefer": f"wait={prefer_wait}"} if prefer_wait else {}
    body = b'{"name":"bench %s %d","category":"City","description":"load"}' % (run.encode(), i)
    sample = Sample(sent=time.time())
    response = await session.client.request("POST", "/api/locations", body, headers)
    sample.publish_ms = _publish_ms(response)
    if prefer_wait:
        if response.status != 201:
            raise RuntimeError(f"{response.status} {response.body[:200]!r}")
        sample.done = time.time()
        return sample
    if response.status != 202:
        raise RuntimeError(f"{response.status} {response.body[:200]!r}")
    accepted = msgspec.json.decode(response.body)
    sample.done, sample.notice = await session.notice_of(accepted["command_id"])
    if sample.notice.status != "succeeded":
        raise RuntimeError(f"command failed: {sample.notice.error}")
    return sample


async def schedule(
    rate: float, duration: float, send: Callable[[int], Coroutine[Any, Any, Sample]]
) -> Result:
    """Start `send(i)` every 1/rate s for `duration` s (open loop), then collect the samples."""
    result = Result(target_rate=rate, duration=duration)
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[Sample]] = []
    cpu0, start = time.process_time(), loop.time()
    for i in range(int(rate * duration)):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    result.wall = loop.time() - start
    result.cpu = time.process_time() - cpu0
    for outcome in outcomes:
        if isinstance(outcome, Sample):
            result.samples.append(outcome)
        else:
            result.errors += 1
    if result.samples:  # the achieved rate is over the span the commands actually took
        result.wall = max(s.done for s in result.samples) - min(s.sent for s in result.samples)
    return result


async def open_loop(
    url: str, rate: float, duration: float, *, sessions: int = 8, prefer_wait: int | None = None
) -> Result:
    """Send `rate` commands/s for `duration` s, round-robin over `sessions` sessions."""
    run = f"{time.time_ns():x}"
    opened = [await Session(url).__aenter__() for _ in range(sessions)]
    try:
        return await schedule(
            rate, duration, lambda i: one_command(opened[i % sessions], i, run, prefer_wait)
        )
    finally:
        for session in opened:
            await session.__aexit__(None, None, None)


async def crud_open_loop(url: str, rate: float, duration: float) -> Result:
    """The same schedule against the synchronous baseline: POST -> 201 with the record."""
    client = Client(url)

    async def one(i: int) -> Sample:
        sample = Sample(sent=time.time())
        body = b'{"name":"crud %d","category":"City","description":"load"}' % i
        response = await client.request("POST", "/locations", body)
        if response.status != 201:
            raise RuntimeError(f"{response.status} {response.body[:200]!r}")
        sample.done = time.time()
        return sample

    try:
        return await schedule(rate, duration, one)
    finally:
        client.close()


HOPS = (
    "client -> API accepted",
    "publish + ack",
    "ack -> reactor start",
    "reactor: reserve, decide, append",
    "reactor: inline views",
    "views -> notice sent",
    "notice -> client (store, relay, SSE)",
)


def hops(sample: Sample) -> list[float] | None:
    """Seconds spent in each hop of HOPS for one command, from the timestamps it carries."""
    notice = sample.notice
    if notice is None or not notice.timings:
        return None
    t = notice.timings
    accepted = notice.submitted_at.timestamp()
    acked = accepted + sample.publish_ms / 1000
    return [
        accepted - sample.sent,
        acked - accepted,
        t["started"] - acked,
        t["appended"] - t["started"],
        t["decided"] - t["appended"],
        t["sent"] - t["decided"],
        sample.done - t["sent"],
    ]


def hop_ms(samples: Iterable[Sample]) -> list[list[float]]:
    """Each hop of HOPS in milliseconds, sorted, over the samples that carry their timings."""
    per_sample = [h for sample in samples if (h := hops(sample)) is not None]
    return [sorted(h[i] * 1000 for h in per_sample) for i in range(len(HOPS))]


def to_builtins(result: Result) -> dict[str, object]:
    return {
        "target_rate": result.target_rate,
        "achieved_rate": result.achieved_rate,
        "errors": result.errors,
        "generator_cpu_share": result.generator_cpu_share,
        "latencies_ms": [round(v * 1000, 3) for v in result.latencies],
    }
