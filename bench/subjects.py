"""Event subjects: the type as a header or as the subject's last token?

    python -m bench.subjects [--aggregates 20000]

For each layout, a fresh nats-server (temp store, the project's nats.conf), a
stream like EVENTS, and `aggregates` aggregates of three events each (three
types), published as `ev.s.<id>` with the type in a header, or as
`ev.s.<id>.<Type>`. Prints nats-server's memory growth and the latency of
loading one aggregate with a batched direct get by subject (exact subject, or
the `ev.s.<id>.*` wildcard the other layout needs), 1,000 loads each.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
from nats.aio.client import Client
from nats.js import api

from bench.stack import rss_bytes
from bench.stats import percentile
from tests.conftest import connect_test_client
from tests.processes import NatsServer

TYPES = ("Created", "Shipped", "Delivered")


async def load(nc: Client, subject: str, expected: int) -> None:
    """One batched direct get of every message on `subject` (as the event store loads)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    request = {"seq": 1, "next_by_subj": subject, "batch": 16}
    await nc.publish("$JS.API.DIRECT.GET.BENCH", msgspec.json.encode(request), reply=inbox)
    got = 0
    while not (msg := await sub.next_msg(timeout=5)).headers or "Status" not in msg.headers:
        got += 1
    await sub.unsubscribe()
    assert got == expected, (got, subject)


async def one_layout(layout: str, aggregates: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "store").start()
        try:
            nc = await connect_test_client(server.url)
            js = nc.jetstream()
            await js.add_stream(
                api.StreamConfig(name="BENCH", subjects=["ev.>"], allow_direct=True)
            )
            before = rss_bytes(server.pid)
            ids = [uuid.uuid4().hex[:24] for _ in range(aggregates)]

            def subject(aggregate: str, event_type: str) -> str:
                return (
                    f"ev.s.{aggregate}" if layout == "header" else f"ev.s.{aggregate}.{event_type}"
                )

            for start in range(0, aggregates, 500):
                await asyncio.gather(
                    *(
                        js.publish(subject(a, t), b"{}", headers={"Event-Type": t})
                        for a in ids[start : start + 500]
                        for t in TYPES
                    )
                )
            grown = (rss_bytes(server.pid) - before) / 2**20
            wanted = "ev.s.{}" if layout == "header" else "ev.s.{}.*"
            latencies = []
            for aggregate in ids[:1000]:
                started = time.perf_counter()
                await load(nc, wanted.format(aggregate), len(TYPES))
                latencies.append(time.perf_counter() - started)
            await nc.close()
        finally:
            server.stop()
    p50, p99 = (percentile(latencies, p) * 1000 for p in (50, 99))
    subjects = aggregates * (1 if layout == "header" else len(TYPES))
    return (
        f"{layout:<7} {subjects:>8} subjects  nats-server +{grown:5.1f} MB"
        f"  load p50 {p50:.3f} ms  p99 {p99:.3f} ms"
    )


async def main(aggregates: int) -> None:
    print(f"{aggregates} aggregates x {len(TYPES)} events; type in a header, or a subject token")
    for layout in ("header", "token"):
        print(await one_layout(layout, aggregates))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.subjects", description=__doc__)
    parser.add_argument("--aggregates", type=int, default=20000)
    asyncio.run(main(parser.parse_args().aggregates))
