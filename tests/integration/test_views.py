"""View records checkpointed with their state, reservations, and leases, against real KV."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from nats.js import JetStreamContext

from contracts.domain import EventMeta
from contracts.events import StoredEvent
from contracts.topology import LEASES_BUCKET, RESERVATIONS_BUCKET
from contracts.views import ViewBuckets
from reactor.leases import Lease
from reactor.reservations import Reservations
from reactor.views import ViewWriter
from tests.domains.memos import FOLDERS, MEMOS, MemoFiled, MemoStamped, MemoWritten

AT = datetime(2026, 11, 25, tzinfo=UTC)


def stored(event: object, seq: int, aggregate_id: str) -> StoredEvent:
    meta = EventMeta("memo", aggregate_id, seq, AT, type(event).__name__, "c", "c", "s")
    return StoredEvent(event, meta)


@pytest.fixture
def buckets(js: JetStreamContext) -> ViewBuckets:
    return ViewBuckets(js, 1)


async def test_each_event_is_applied_to_a_record_once(buckets: ViewBuckets) -> None:
    writer = ViewWriter()
    memo = uuid.uuid4().hex
    events = [stored(MemoWritten("t"), 10, memo), stored(MemoStamped("a"), 11, memo)]
    await writer.apply(buckets, MEMOS, events)
    await writer.apply(buckets, MEMOS, events)  # again: a redelivery, a rebuild racing
    states = await writer.apply(buckets, MEMOS, [*events, stored(MemoStamped("b"), 12, memo)])
    assert states[memo].stamps == ("a", "b")
    record = await buckets.record("memos", memo)
    assert record is not None
    assert record.position == 12


async def test_a_writer_behind_a_gap_fills_it_from_the_events_it_is_given(
    buckets: ViewBuckets,
) -> None:
    """Two commands on one aggregate: the later one's write lands first, with every event."""
    writer = ViewWriter()
    memo = uuid.uuid4().hex
    written, first, second = (
        stored(MemoWritten("t"), 20, memo),
        stored(MemoStamped("a"), 21, memo),
        stored(MemoStamped("b"), 22, memo),
    )
    await writer.apply(buckets, MEMOS, [written])
    await writer.apply(buckets, MEMOS, [written, first, second])  # the later command
    states = await writer.apply(buckets, MEMOS, [written, first])  # the earlier one, late
    assert states[memo].stamps == ("a", "b")


async def test_concurrent_writers_of_one_key_lose_nothing(buckets: ViewBuckets) -> None:
    writer = ViewWriter()
    folder = uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))
    events = [stored(MemoFiled(folder, "normal"), 100 + i, uuid.uuid4().hex) for i in range(30)]
    # Thirty writers, each with the events up to its own (as ordered folds hand them).
    await asyncio.gather(*(writer.apply(buckets, FOLDERS, events[: i + 1]) for i in range(30)))
    record = await buckets.record("memo_folders", folder)
    assert record is not None
    assert record.position == 129
    assert writer.decode_state(FOLDERS, record).memos == 30


async def test_progress_only_moves_forward(buckets: ViewBuckets) -> None:
    writer = ViewWriter()
    view = f"p{uuid.uuid4().hex[:8]}"
    await writer.save_progress(buckets, view, 5)
    await writer.save_progress(buckets, view, 3)
    assert await buckets.progress(view) == 5
    await writer.save_progress(buckets, view, 9)
    assert await buckets.progress(view) == 9


async def test_a_value_is_reserved_for_one_aggregate_whatever_its_case(
    js: JetStreamContext,
) -> None:
    reservations = Reservations(await js.key_value(RESERVATIONS_BUCKET))
    full_width_l = "\uff2c"  # folded by NFKC to "L"
    value = f"{full_width_l}eeds {uuid.uuid4().hex}"
    claims = await asyncio.gather(
        *(reservations.claim("test-scope", v, f"agg{i}") for i, v in enumerate([value] * 5))
    )
    owners = {c.owner for c in claims}
    assert len(owners) == 1
    assert sum(c.new for c in claims) == 1
    again = await reservations.claim(
        "test-scope", value.upper().replace(full_width_l, "l"), "other"
    )
    assert again.owner in owners
    assert not again.new
    winner = next(c for c in claims if c.new)
    assert await reservations.release(winner)
    assert await reservations.owner("test-scope", value) is None
    # A claim read before the value changed hands gives back nothing.
    taken = await reservations.claim("test-scope", value, "newcomer")
    assert taken.new
    assert not await reservations.release(winner)
    assert await reservations.owner("test-scope", value) == "newcomer"


async def test_a_lease_is_held_by_one_and_taken_over_once_released(js: JetStreamContext) -> None:
    kv = await js.key_value(LEASES_BUCKET)
    job = f"job.{uuid.uuid4().hex}"
    first, second = Lease(kv, job), Lease(kv, job)
    assert await first.acquire()
    assert not await second.acquire()
    assert await first.renew()
    await first.release()
    assert await second.acquire()
    assert not await first.renew()  # it was lost


async def test_releasing_a_lease_lost_meanwhile_leaves_the_new_holder_alone(
    js: JetStreamContext,
) -> None:
    kv = await js.key_value(LEASES_BUCKET)
    job = f"job.{uuid.uuid4().hex}"
    first, second = Lease(kv, job), Lease(kv, job)
    assert await first.acquire()
    await kv.delete(job)  # lost (as if expired) without it knowing
    assert await second.acquire()
    await first.release()  # its revision is stale: nothing deleted, nothing raised
    assert await second.renew()
    assert (await kv.get(job)).value == second.holder.encode()


async def test_a_holder_restarted_under_its_id_takes_its_lease_back(js: JetStreamContext) -> None:
    kv = await js.key_value(LEASES_BUCKET)
    job = f"job.{uuid.uuid4().hex}"
    before_crash = Lease(kv, job, holder="reactor-1")
    assert await before_crash.acquire()
    restarted, stranger = Lease(kv, job, holder="reactor-1"), Lease(kv, job, holder="reactor-2")
    assert not await stranger.acquire()
    assert await restarted.acquire()  # its own lease, before the TTL runs out
    assert not await before_crash.renew()  # the old incarnation's revision is stale
    assert await restarted.renew()


async def test_a_writer_remembering_a_stale_record_reads_it_again(buckets: ViewBuckets) -> None:
    """Two processes' writers taking turns on one record: each one's memory goes stale."""
    here, there = ViewWriter(), ViewWriter()
    memo = uuid.uuid4().hex
    events = [stored(MemoWritten("t"), 50, memo)]
    await here.apply(buckets, MEMOS, events)
    for seq in range(51, 57):
        events.append(stored(MemoStamped(str(seq)), seq, memo))
        writer = here if seq % 2 else there
        await writer.apply(buckets, MEMOS, list(events))
    record = await buckets.record("memos", memo)
    assert record is not None
    assert record.position == 56
    assert here.decode_state(MEMOS, record).stamps == tuple(str(s) for s in range(51, 57))
