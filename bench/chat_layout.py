"""`python -m bench.chat_layout`: what a chat batch costs stored by channel, or by shard.

The server partitions keyed events by a token of their subject, so a batch's
messages must be stored keyed by something of the channel: the channel
itself (about 270 events for 1,000 messages over 500 channels of skewed
popularity), or one of 64 shards of channels (at most 64). Both layouts,
with the same messages, on a nats-server of their own (`sync_interval:
always`), through the real event store, reader and partition folds:

- **append**: decide and append each batch (one atomic batch of events);
- **fold**: read every partition's events back and fold them into records
  (the aggregator's fenced atomic writes included).

Prints the CPU this process spends per message on each, and the events per
batch. Interleaved rounds; the median kept.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import nats

from bench.chat import batches
from contracts.commands import Command
from contracts.domain import Domain, Event
from contracts.registry import Registry
from contracts.topology import EVENTS_STREAM, PARTITIONS, ensure_topology
from contracts.views import ViewBuckets
from domains.chat import CHANNELS, DOMAIN
from domains.chat.batch import by_channel, decide
from domains.chat.commands import PostMessages
from domains.chat.events import MessagesPosted
from reactor.aggregators import PartitionFold
from reactor.eventstore import EventStore
from reactor.reader import EventReader
from tests.helpers import envelope
from tests.processes import NATS_PASSWORD, NATS_USER, NatsServer


def by_channel_decide(state: object, command: PostMessages) -> list[msgspec.Struct]:
    """The other layout: one keyed event per channel of the batch."""
    events = decide(None, command)
    out: list[msgspec.Struct] = [events[0]]
    for event in events[1:]:
        assert isinstance(event, MessagesPosted)
        out += [MessagesPosted(channel, part) for channel, part in by_channel(event).items()]
    return out


def first_channel(event: MessagesPosted) -> str:
    return event.messages[0].channel  # one channel an event, in this layout


Decide = Callable[[Any, PostMessages], list[msgspec.Struct]]


def layouts() -> dict[str, tuple[Registry, Decide]]:
    keyed = [
        Event(e.type, key=first_channel) if e.type is MessagesPosted else e for e in DOMAIN.events
    ]
    per_channel: Domain = dataclasses.replace(DOMAIN, events=tuple(keyed))
    return {
        "by shard (64)": (Registry([DOMAIN]), decide),
        "by channel": (Registry([per_channel]), by_channel_decide),
    }


async def one(
    layout: str, commands: list[Command], payloads: list[PostMessages]
) -> dict[str, float]:
    registry, deciding = layouts()[layout]
    with tempfile.TemporaryDirectory(prefix="bench-layout-") as tmp:
        server = NatsServer(Path(tmp) / "store").start()
        try:
            nc = await nats.connect(server.url, user=NATS_USER, password=NATS_PASSWORD)
            js = nc.jetstream()
            await ensure_topology(js, registry.buckets)
            store = EventStore(nc, registry)
            events = 0
            cpu = time.process_time()
            for command, payload in zip(commands, payloads, strict=True):
                decided = deciding(None, payload)
                events += len(decided) - 1
                await store.append(command, "chat", decided, expected=0, at=command.submitted_at)
            append_cpu = time.process_time() - cpu

            buckets = ViewBuckets(js, 1)
            cpu = time.process_time()
            for p in range(PARTITIONS):
                fold = PartitionFold(CHANNELS, nc, buckets, p)
                await fold.start()
                subjects = registry.partition_filter(registry.aggregators[CHANNELS.name], p)
                reader = EventReader(js, registry, subjects, 0, batch=4096)
                while (batch := await reader.next_batch(wait=0.2)).last_seq is not None:
                    await fold.apply(batch.events)
                await fold.flush(reader.position)
                await fold.settle()
                await reader.close()
            fold_cpu = time.process_time() - cpu
            stored = (await js.stream_info(EVENTS_STREAM)).state.messages
            assert stored == events + len(commands)
            await nc.close()
        finally:
            server.stop()
    messages = sum(len(p.messages) for p in payloads)
    return {
        "events a batch": events / len(commands),
        "append µs a message": append_cpu / messages * 1e6,
        "fold µs a message": fold_cpu / messages * 1e6,
    }


async def run(batches_n: int, rounds: int) -> dict[str, dict[str, float]]:
    bodies = batches(batches_n, seed=4)
    payloads = [msgspec.json.decode(b, type=PostMessages) for b in bodies]
    commands = [envelope(p) for p in payloads]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in layouts()}
    for _ in range(rounds):
        for name in layouts():
            results[name].append(await one(name, commands, payloads))
    return {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in results.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chat_layout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batches", type=int, default=100, help="batches of 1,000 messages")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found = asyncio.run(run(args.batches, args.rounds))
    for name, figures in found.items():
        print(
            f"{name:<14} {figures['events a batch']:6.1f} events a batch   "
            f"append {figures['append µs a message']:5.1f} µs CPU a message   "
            f"fold {figures['fold µs a message']:5.1f} µs CPU a message"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
