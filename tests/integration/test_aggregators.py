"""Keyed events and partitioned aggregators against a real nats-server (each test its own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts.commands import Command
from contracts.connection import NatsSettings
from contracts.domain import Aggregator
from contracts.events import StoredEvent
from contracts.topology import EVENTS_STREAM, LEASES_BUCKET, PARTITIONS, event_subject
from contracts.views import ViewBuckets, memo_key
from domains.chat import CHANNELS
from domains.chat.batch import decide, shard_of
from domains.chat.commands import ChatMessage, PostMessages
from domains.chat.events import MessagesPosted
from reactor.aggregators import MAX_KEYS_PER_WRITE, PartitionFold, Refold
from reactor.eventstore import Conflict, EventStore
from reactor.jobs import Superseded
from reactor.main import parse_args, run
from reactor.reader import EventReader
from tests.conftest import REGISTRY
from tests.helpers import envelope, eventually, stream_messages
from tests.processes import NATS_PASSWORD, NATS_USER, NatsServer

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def fnv1a(token: str) -> int:
    """The server's partition(): FNV-1a (32 bits) of the token."""
    h = 0x811C9DC5
    for byte in token.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def batch(n: int, channels: int, offset: int = 0) -> PostMessages:
    return PostMessages(
        [
            ChatMessage(f"ch{(i * 7) % channels}", f"u{i % 11}", "hi", AT + timedelta(seconds=i))
            for i in range(offset, offset + n)
        ]
    )


async def append(store: EventStore, payload: PostMessages) -> Command:
    command = envelope(payload)
    await store.append(command, "chat", decide(None, payload), expected=0, at=AT)
    return command


async def partition_events(js: JetStreamContext, partition: int) -> list[StoredEvent]:
    reader = EventReader(js, REGISTRY, REGISTRY.partition_filter(CHANNELS, partition), 0)
    found: list[StoredEvent] = []
    try:
        while (got := await reader.next_batch(wait=0.3)).last_seq is not None:
            found += got.events
    finally:
        await reader.close()
    return found


def reference(events: list[StoredEvent]) -> dict[str, Any]:
    """The records the domain's fold makes of these events, in memory: what must be stored."""
    assert CHANNELS.split is not None
    records: dict[str, Any] = {}
    memos: dict[str, Any] = {}
    for stored in events:
        for key, part in CHANNELS.split(stored.event).items():
            records[key], memos[key] = CHANNELS.apply(
                records.get(key), memos.get(key), part, stored.meta
            )
    return {k: msgspec.to_builtins(v) for k, v in records.items()}


async def stored_records(buckets: ViewBuckets, keys: list[str]) -> dict[str, Any]:
    found = await buckets.records(CHANNELS.name, keys)
    return {k: msgspec.json.decode(r.state) for k, r in found.items()}


@pytest.fixture
def store(fresh_nc: Client, fresh_js: JetStreamContext) -> EventStore:
    return EventStore(fresh_nc, REGISTRY)


async def test_keyed_events_are_stored_at_the_partition_the_server_gives_their_key(
    store: EventStore, fresh_js: JetStreamContext
) -> None:
    payload = batch(200, channels=40)
    command = await append(store, payload)
    events = decide(None, payload)
    seen: list[str] = []
    for seq in range(1, len(events) + 1):
        seen.append((await fresh_js.get_msg(EVENTS_STREAM, seq)).subject or "")
    assert seen[0] == event_subject("chat", command.aggregate_id)  # the guard, first
    shards = [e.shard for e in events if isinstance(e, MessagesPosted)]
    assert seen[1:] == [f"ev.chat.{fnv1a(s) % PARTITIONS}.{s}" for s in shards]


async def test_a_batch_stored_already_is_refused_whole(
    store: EventStore, fresh_js: JetStreamContext
) -> None:
    payload = batch(50, channels=10)
    command = await append(store, payload)
    before = await stream_messages(fresh_js, EVENTS_STREAM)
    # Decided again under another command id (after the dedup window, say): the guard,
    # expecting the batch's own subject empty, refuses the whole batch.
    again = msgspec.structs.replace(command, command_id="f" * 32)
    with pytest.raises(Conflict):
        await store.append(again, "chat", decide(None, payload), expected=0, at=AT)
    assert await stream_messages(fresh_js, EVENTS_STREAM) == before


async def fold_partition(
    nc: Client, buckets: ViewBuckets, partition: int, events: list[StoredEvent]
) -> PartitionFold:
    fold = PartitionFold(CHANNELS, nc, buckets, partition)
    await fold.start()
    await fold.apply(events)
    return fold


async def test_a_fold_that_crashed_before_writing_is_redone_from_what_is_stored_exactly_once(
    store: EventStore, fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    for i in range(20):
        await append(store, batch(100, channels=30, offset=i * 100))
    buckets = ViewBuckets(fresh_js, 1)
    partition = fnv1a(shard_of("ch0")) % PARTITIONS
    events = await partition_events(fresh_js, partition)
    assert len(events) >= 10
    half = len(events) // 2

    first = await fold_partition(fresh_nc, buckets, partition, events[:half])
    await first.flush(events[half - 1].meta.seq)
    await first.settle()
    await first.apply(events[half:])  # ... and dies before writing this

    second = PartitionFold(CHANNELS, fresh_nc, buckets, partition)
    assert await second.start() == events[half - 1].meta.seq
    await second.apply([e for e in events if e.meta.seq > second.position])
    await second.flush(events[-1].meta.seq)
    await second.settle()

    expected = reference(events)
    assert await stored_records(buckets, list(expected)) == expected
    memo = await (await buckets.bucket(CHANNELS.name)).get(memo_key(next(iter(expected))))
    assert memo.value  # the open windows' users are stored with the counts


async def test_a_fold_remembering_fewer_keys_than_a_batch_touches_folds_it_whole(
    store: EventStore, fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    """Stored keys are read when a batch needs them, and the least recently used are
    forgotten past `remember`: never one the batch itself is about to fold (that was a
    KeyError, and a batch of more keys than `remember` stuck its partition for ever)."""
    for i in range(4):
        await append(store, batch(100, channels=30, offset=i * 100))
    buckets = ViewBuckets(fresh_js, 1)
    partition = fnv1a(shard_of("ch0")) % PARTITIONS
    events = await partition_events(fresh_js, partition)
    half = len(events) // 2
    first = await fold_partition(fresh_nc, buckets, partition, events[:half])
    await first.flush(events[half - 1].meta.seq)
    await first.settle()
    # Another reactor takes the partition on: its keys are in the store, not in memory.
    fold = PartitionFold(CHANNELS, fresh_nc, buckets, partition, remember=1)
    assert await fold.start() == events[half - 1].meta.seq
    for start in range(half, len(events), 3):  # written after each: keys can be forgotten
        chunk = events[start : start + 3]
        await fold.apply(chunk)
        await fold.flush(chunk[-1].meta.seq)
        await fold.settle()
    expected = reference(events)
    assert await stored_records(buckets, list(expected)) == expected


async def test_a_second_writer_of_a_partition_is_refused_whole(
    store: EventStore, fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    await append(store, batch(100, channels=30))
    buckets = ViewBuckets(fresh_js, 1)
    partition = fnv1a(shard_of("ch0")) % PARTITIONS
    events = await partition_events(fresh_js, partition)
    ahead = await fold_partition(fresh_nc, buckets, partition, events)
    stale = await fold_partition(fresh_nc, buckets, partition, events)  # read the same start
    await ahead.flush(events[-1].meta.seq)
    await ahead.settle()
    before = await stored_records(buckets, list(reference(events)))
    await stale.apply(events)  # counting them twice, were it written
    await stale.flush(events[-1].meta.seq)  # the write goes on in the background...
    with pytest.raises(Superseded):
        await stale.settle()  # ... and is refused whole
    assert await stored_records(buckets, list(before)) == before


async def test_a_fold_touching_more_keys_than_one_write_holds_writes_them_in_turn(
    store: EventStore, fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    channels = MAX_KEYS_PER_WRITE * PARTITIONS  # about MAX_KEYS_PER_WRITE in each partition
    for i in range(0, 2 * channels, 900):
        await append(store, batch(900, channels=channels, offset=i))
    buckets = ViewBuckets(fresh_js, 1)
    refold = Refold(CHANNELS, REGISTRY, fresh_nc, buckets)
    end = (await fresh_js.stream_info(EVENTS_STREAM)).state.last_seq
    await refold.until(end)
    assert await buckets.partitions(CHANNELS.name) == [end] * PARTITIONS
    everything = [e for p in range(PARTITIONS) for e in await partition_events(fresh_js, p)]
    expected = reference(everything)
    assert len(expected) == channels
    assert await stored_records(buckets, list(expected)) == expected
    ranks = await buckets.ranking(CHANNELS.name)
    assert ranks == {k: v["total"] for k, v in expected.items()}


async def test_what_is_stored_never_holds_an_event_past_the_stored_position(
    store: EventStore, fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    """A write in the middle of a fold (too many keys changed) says how far the records go."""
    channels = (MAX_KEYS_PER_WRITE + 100) * PARTITIONS
    for i in range(0, 2 * channels, 900):
        await append(store, batch(900, channels=channels, offset=i))
    buckets = ViewBuckets(fresh_js, 1)
    events = await partition_events(fresh_js, 0)
    fold = PartitionFold(CHANNELS, fresh_nc, buckets, 0)
    await fold.start()
    half = len(events) // 2
    await fold.apply(events[:half])  # changes left in memory...
    await fold.apply(events[half:])  # ... and the next events make it write
    await fold.settle()
    stored = await buckets.records(
        CHANNELS.name, await buckets.keys(CHANNELS.name, records_only=True)
    )
    position = (await buckets.partitions(CHANNELS.name))[0]
    assert 0 < max(r.position for r in stored.values()) <= position


@asynccontextmanager
async def reactor_in_process(server: NatsServer, name: str) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    settings = NatsSettings(url=server.url, user=NATS_USER, password=NATS_PASSWORD)
    task = asyncio.create_task(run(parse_args(["--id", name]), settings, REGISTRY, stop))
    try:
        yield stop
    finally:
        stop.set()
        await task


async def holders(js: JetStreamContext, aggregator: Aggregator) -> dict[str, int]:
    """How many of the aggregator's partitions each reactor holds now."""
    kv = await js.key_value(LEASES_BUCKET)
    found: dict[str, int] = {}
    for p in range(PARTITIONS):
        try:
            entry = await kv.get(f"aggregator.{aggregator.name}.{p}")
        except Exception:  # no holder right now (KeyNotFound, KeyDeleted)
            continue
        holder = (entry.value or b"").decode()
        found[holder] = found.get(holder, 0) + 1
    return found


async def test_two_reactors_share_the_partitions_and_one_takes_all_when_the_other_stops(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    async def spread(wanted: dict[str, int]) -> bool | None:
        return True if await holders(fresh_js, CHANNELS) == wanted else None

    async with reactor_in_process(fresh_server, "one"):
        await eventually(lambda: spread({"one": PARTITIONS}), within=15)
        async with reactor_in_process(fresh_server, "two"):
            half = PARTITIONS // 2
            await eventually(lambda: spread({"one": half, "two": half}), within=20)
        # "two" stopped cleanly: it gave its partitions up at once.
        await eventually(lambda: spread({"one": PARTITIONS}), within=15)
