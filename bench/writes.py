"""What one decision's writes cost on this disk: a single publish, two, and an atomic batch.

    python -m bench.writes [--n 300] [--rounds 3]

On a nats-server of its own with the project's nats.conf (`sync_interval:
always`), interleaved, one at a time (as the reactor writes a command):

- one publish with `Nats-Expected-Last-Subject-Sequence` (an event);
- a KV create, then that publish (a reserved name and its event, as now);
- the same two messages as one atomic batch (`reactor.batch`, the expected
  sequence on each message), the way a reservation kept in EVENTS would be
  written together with its event.

Prints each one's p50 and p99 (the median of the rounds). The question it
answers: would moving reservations into EVENTS, one batch with the event,
take a write off the command's path?
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from nats.js import api

from bench.stack import own_server
from bench.stats import summarize
from reactor.batch import Message, publish_atomic
from reactor.eventstore import EXPECTED_SUBJECT_SEQ
from tests.conftest import connect_test_client


async def measure(url: str, n: int, rounds: int) -> dict[str, tuple[float, float]]:
    nc = await connect_test_client(url)
    try:
        js = nc.jetstream()
        await js.add_stream(
            api.StreamConfig(name="BENCH_WRITES", subjects=["w.>"], allow_atomic=True)
        )
        kv = await js.create_key_value(bucket="bench_writes")
        payload = b'{"name":"writes","category":"City","description":"x"}' * 2

        async def single(i: str) -> None:
            await js.publish(f"w.ev.{i}", payload, headers={EXPECTED_SUBJECT_SEQ: "0"})

        async def reserve_then_publish(i: str) -> None:
            await kv.create(f"r{i}", i.encode())
            await js.publish(f"w.ev2.{i}", payload, headers={EXPECTED_SUBJECT_SEQ: "0"})

        async def batch(i: str) -> None:
            await publish_atomic(
                nc,
                [
                    Message(f"w.res.{i}", i.encode(), {EXPECTED_SUBJECT_SEQ: "0"}),
                    Message(f"w.ev3.{i}", payload, {EXPECTED_SUBJECT_SEQ: "0"}),
                ],
            )

        kinds: dict[str, Callable[[str], Awaitable[None]]] = {
            "one publish (an event)": single,
            "KV create + publish (a reservation, then its event)": reserve_then_publish,
            "atomic batch of the two": batch,
        }
        p50s: dict[str, list[float]] = {k: [] for k in kinds}
        p99s: dict[str, list[float]] = {k: [] for k in kinds}
        for r in range(rounds):
            samples: dict[str, list[float]] = {k: [] for k in kinds}
            for i in range(n):
                for name, write in kinds.items():
                    started = time.perf_counter()
                    await write(f"{r}_{i}")
                    samples[name].append(time.perf_counter() - started)
            for name, values in samples.items():
                s = summarize(values)
                p50s[name].append(s.p50_ms)
                p99s[name].append(s.p99_ms)
        return {k: (statistics.median(p50s[k]), statistics.median(p99s[k])) for k in kinds}
    finally:
        await nc.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.writes", description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with own_server("bench-writes-") as url:
        results = asyncio.run(measure(url, args.n, args.rounds))
    base = results["one publish (an event)"][0]
    print(f"{args.n} writes each, {args.rounds} interleaved rounds, sync_interval: always")
    for name, (p50, p99) in results.items():
        print(f"  {name:55} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  (p50 x{p50 / base:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
