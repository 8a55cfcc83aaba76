"""Chat channel stats at volume: ingestion end to end, aggregation alone, and the live lag.

(a) **Ingestion**: pre-made batches of 1,000 messages (skewed channels, as
    `task chat:simulate` makes them) POSTed as fast as the API takes them,
    timed from the first POST to every message counted in KV (each
    partition's stored position at the end of EVENTS), `sync_interval: always`.
(b) **Aggregation alone**: a backlog already in EVENTS (made by a reactor that
    only handles commands, `--no-jobs`), read by a naive consumer (the seed's
    first approach: one ordered consumer, the same pure fold, state in memory
    only: no durability, no exactly-once), then folded by the exactly-once
    partition workers (a runner per partition as a reactor runs them: leases,
    fenced atomic writes of records, memos and positions). Both in this one
    process, one after the other, each timed from its start to the last
    event folded (for the workers: every partition's position stored).
(c) **Lag**: while traffic runs at `lag_rate` messages/s, a probe batch every
    100 ms into one channel, timed from its 202 to the live view
    (`/api/chat/channels/{channel}/live`) showing it counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NotFoundError

from bench.chatsim import Traffic
from bench.rawhttp import Client
from bench.stack import API_ENV, CpuMeter
from contracts.events import read_event
from contracts.topology import (
    COMMANDS_STREAM,
    EVENTS_STREAM,
    LEASES_BUCKET,
    PARTITIONS,
    REACTOR_CONSUMER,
)
from contracts.views import ActiveViews, ViewBuckets
from domains import registry
from domains.chat import CHANNELS
from reactor.aggregators import PartitionJob
from reactor.jobs import Runner
from reactor.members import Members
from tests.processes import (
    NATS_PASSWORD,
    NATS_USER,
    NatsServer,
    Process,
    Stack,
    api,
    base_url,
    reactor,
)

PATH = "/api/chat/messages"


@dataclass
class Ingestion:
    messages: int
    accepted_s: float  # first POST to the last 202
    counted_s: float  # first POST to every message counted
    cores: dict[str, float] = field(default_factory=dict)  # per process, over counted_s

    @property
    def accepted_per_s(self) -> float:
        return self.messages / self.accepted_s

    @property
    def counted_per_s(self) -> float:
        return self.messages / self.counted_s


@dataclass
class Aggregation:
    messages: int
    events: int
    workers_s: float
    workers_cpu_s: float
    naive_s: float
    naive_cpu_s: float

    @property
    def workers_per_s(self) -> float:
        return self.messages / self.workers_s

    @property
    def naive_per_s(self) -> float:
        return self.messages / self.naive_s


def batches(n: int, seed: int = 1) -> list[bytes]:
    """`n` batches of 1,000 messages over 500 channels, encoded (made before any timing)."""
    traffic = Traffic(500, 10_000, "bench", jitter=2.0, seed=seed)
    return [msgspec.json.encode(traffic.batch(1000)[0]) for _ in range(n)]


async def post_all(url: str, bodies: list[bytes], concurrency: int = 8) -> None:
    """POST every batch, `concurrency` at a time, each on a keep-alive connection."""
    queue = list(reversed(bodies))

    async def worker() -> None:
        client = Client(url)
        try:
            while queue:
                response = await client.request("POST", PATH, queue.pop())
                if response.status != 202:
                    raise RuntimeError(f"{PATH}: {response.status} {response.body[:200]!r}")
        finally:
            client.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def connect(server: NatsServer) -> NatsClient:
    return await nats.connect(server.url, user=NATS_USER, password=NATS_PASSWORD)


async def commands_done(js: JetStreamContext) -> None:
    """Every accepted command handled and acknowledged."""
    while True:
        info = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.02)


async def all_counted(js: JetStreamContext) -> None:
    """Every accepted message counted: each partition has folded its last event."""
    await commands_done(js)
    await folded(js, await last_events(js))


async def last_events(js: JetStreamContext) -> list[int]:
    """The sequence of each partition's last event (0: none).

    Not the stream's end: a partition stores that as its position only after
    a second of idling (what `min_position` reads wait on), which is not work.
    """
    found = []
    for partition in range(PARTITIONS):
        try:
            msg = await js.get_last_msg(EVENTS_STREAM, f"ev.chat.{partition}.*")
            found.append(msg.seq or 0)
        except NotFoundError:
            found.append(0)
    return found


async def folded(js: JetStreamContext, ends: list[int]) -> None:
    """Every partition of the aggregator has folded EVENTS up to its end in `ends`."""
    buckets = ViewBuckets(js, 1)
    while True:
        reached = await buckets.partitions(CHANNELS.name)
        if all(at >= end for at, end in zip(reached, ends, strict=True)):
            return
        await asyncio.sleep(0.01)


async def spread(js: JetStreamContext, reactors: int, within: float = 30) -> None:
    """Wait until `reactors` reactors hold the aggregator's partitions, evenly."""
    leases = await js.key_value(LEASES_BUCKET)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        holders: dict[bytes, int] = {}
        for p in range(PARTITIONS):
            with contextlib.suppress(KeyNotFoundError, KeyDeletedError):
                holder = (await leases.get(f"aggregator.{CHANNELS.name}.{p}")).value or b""
                holders[holder] = holders.get(holder, 0) + 1
        if len(holders) == reactors and max(holders.values()) - min(holders.values()) <= 1:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the partitions did not spread over {reactors} reactors")


async def ingestion(stack: Stack, n: int, *others: Process) -> Ingestion:
    """(a), with the stack's reactor and `others` sharing the work."""
    bodies = batches(n + 1)
    nc = await connect(stack.server)
    js = nc.jetstream()
    try:
        await spread(js, 1 + len(others))
        await post_all(stack.url, bodies[:1], 1)  # warm-up: the first batch, not timed
        await all_counted(js)
        pids = {"api": stack.api.pid, "reactor": stack.reactor.pid, "nats": stack.server.pid}
        pids.update({f"reactor {i + 2}": process.pid for i, process in enumerate(others)})
        meter = CpuMeter({name: [pid] for name, pid in pids.items()})
        own = time.process_time()
        started = time.monotonic()
        await post_all(stack.url, bodies[1:])
        accepted = time.monotonic() - started
        await all_counted(js)
        counted = time.monotonic() - started
        cores = meter.cores(counted)
        cores["load generator"] = (time.process_time() - own) / counted
        return Ingestion(n * 1000, accepted, counted, cores)
    finally:
        await nc.close()


@contextlib.contextmanager
def commands_only_stack(store: Path) -> Iterator[tuple[NatsServer, Process]]:
    """nats-server and an API, and a reactor that handles commands but folds nothing."""
    server = NatsServer(store).start()
    started: list[Process] = [server]
    try:
        started.append(reactor(server.url, "--no-jobs").start())
        the_api = api(server.url, env=API_ENV).start()
        started.append(the_api)
        yield server, the_api
    finally:
        for process in reversed(started):
            process.stop()


async def naive(server: NatsServer, expected: int) -> tuple[float, float, int]:
    """The seed's first approach: one consumer, the fold in memory (nothing stored):
    (seconds, CPU seconds, events folded)."""
    registry_ = registry()
    assert CHANNELS.split is not None
    records: dict[str, Any] = {}
    memos: dict[str, Any] = {}
    done = asyncio.Event()
    events = 0

    async def on_event(msg: Any) -> None:
        nonlocal events
        seq = msg.metadata.sequence.stream
        stored = read_event(registry_, msg.subject, seq, msg.headers, msg.data)
        assert CHANNELS.split is not None
        for key, part in CHANNELS.split(stored.event).items():
            records[key], memos[key] = CHANNELS.apply(
                records.get(key), memos.get(key), part, stored.meta
            )
        events += 1
        if events >= expected:
            done.set()

    nc = await connect(server)
    try:
        cpu, started = time.process_time(), time.monotonic()
        sub = await nc.jetstream().subscribe(
            registry_.partition_filter(CHANNELS)[0],
            cb=on_event,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        await done.wait()
        took, cpu = time.monotonic() - started, time.process_time() - cpu
        await sub.unsubscribe()
        return took, cpu, events
    finally:
        await nc.close()


async def workers(server: NatsServer, ends: list[int]) -> tuple[float, float]:
    """The exactly-once partition workers, as a reactor runs them (a runner per partition,
    leases, fenced atomic writes), here in this process: (seconds, CPU seconds) to `end`."""
    nc = await connect(server)
    js = nc.jetstream()
    active = ActiveViews()
    await active.start(nc)
    leases = await js.key_value(LEASES_BUCKET)
    share = Members(js, leases, "bench").share(PARTITIONS)
    domains = registry()
    runners = [
        Runner(PartitionJob(CHANNELS, p, domains, nc, active), js, domains, leases, gate=share)
        for p in range(PARTITIONS)
    ]
    stop = asyncio.Event()
    try:
        cpu, started = time.process_time(), time.monotonic()
        tasks = [asyncio.create_task(r.run(stop)) for r in runners]
        await folded(js, ends)
        return time.monotonic() - started, time.process_time() - cpu
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await active.stop()
        await nc.close()


async def aggregation(n: int) -> Aggregation:
    bodies = batches(n, seed=2)
    with (
        tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp,
        commands_only_stack(Path(tmp) / "store") as (server, the_api),
    ):
        nc = await connect(server)
        js = nc.jetstream()
        try:
            await post_all(base_url(the_api), bodies)
            await commands_done(js)
            ends = await last_events(js)
            keyed = await js.stream_info(EVENTS_STREAM, subjects_filter="ev.chat.*.*")
            events = sum((keyed.state.subjects or {}).values())
        finally:
            await nc.close()
        naive_s, naive_cpu, seen = await naive(server, events)
        assert seen == events, (seen, events)
        workers_s, workers_cpu = await workers(server, ends)
    return Aggregation(n * 1000, events, workers_s, workers_cpu, naive_s, naive_cpu)


async def lag(stack: Stack, seconds: float, rate: float) -> list[float]:
    """Seconds from a probe batch's 202 to the live view showing it, under `rate` msgs/s."""
    load = batches(max(1, int(seconds * rate / 1000)) + 1, seed=3)
    probe_channel = f"lag-{int(time.time())}"
    probe = msgspec.json.encode(
        {"messages": [{"channel": probe_channel, "user": "probe", "text": "p", "sent_at": ""}]}
    )
    client = Client(stack.url)
    seen: list[int] = [0]
    changed = asyncio.Event()
    stop = asyncio.Event()
    samples: list[float] = []

    def body() -> bytes:
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
        return probe.replace(b'"sent_at":""', f'"sent_at":"{now}"'.encode())

    async def follow() -> None:
        async for event, data, _ in Client(stack.url).events(
            f"/api/chat/channels/{probe_channel}/live"
        ):
            if event == "state":
                seen[0] = msgspec.json.decode(data)["total"]
                changed.set()

    async def background() -> None:
        interval = 1000 / rate
        started = time.monotonic()
        sent: list[asyncio.Task[Any]] = []
        for k, batch in enumerate(load):
            await asyncio.sleep(max(0.0, started + k * interval - time.monotonic()))
            if stop.is_set():
                break
            sent.append(asyncio.create_task(client.request("POST", PATH, batch)))
        await asyncio.gather(*sent)

    first = await client.request("POST", PATH, body(), {"Prefer": "wait=10"})
    assert first.status == 200, first.body
    position = msgspec.json.decode(first.body)["position"]
    record = f"/api/chat/channels/{probe_channel}?min_position={position}"
    assert (await client.request("GET", record)).status == 200  # counted: it can be followed
    followed = asyncio.create_task(follow())
    loading = asyncio.create_task(background())
    try:
        await asyncio.wait_for(changed.wait(), 30)  # the stream's first state
        end = time.monotonic() + seconds
        expected = seen[0]
        probe_client = Client(stack.url)
        while time.monotonic() < end:
            response = await probe_client.request("POST", PATH, body())
            accepted = time.monotonic()
            assert response.status == 202, response.body
            expected += 1
            while True:
                changed.clear()  # then look: an update in between is not missed
                if seen[0] >= expected:
                    break
                await asyncio.wait_for(changed.wait(), 30)
            samples.append(time.monotonic() - accepted)
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - accepted)))
    finally:
        stop.set()
        followed.cancel()
        await loading
        with contextlib.suppress(asyncio.CancelledError):
            await followed
    return samples
