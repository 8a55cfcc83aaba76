"""Reading stored commands and notices back, and relaying live notices."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import NotFoundError

from api.inbox import MAX_WAITING, Inbox
from api.relay import MAX_FILL, Item, NoticeRelay, Resync, Unavailable
from contracts.commands import encoder
from contracts.lookups import (
    StoredNotice,
    bucket_keys,
    find_command,
    find_notice,
    session_notices_after,
)
from contracts.notices import Notice
from contracts.topology import NOTICES_STREAM, notice_subject
from tests.conftest import connect_test_client
from tests.helpers import eventually, make_command, make_notice, publish_command
from tests.nats_proxy import NatsProxy, nats_proxy
from tests.processes import NatsServer


async def store_notice(js: JetStreamContext, session_id: str, notice: Notice) -> int:
    ack = await js.publish(notice_subject(session_id, notice.command_id), encoder.encode(notice))
    return ack.seq


async def store_notices(js: JetStreamContext, session_id: str, n: int) -> list[StoredNotice]:
    """`n` new notices of the session, stored one after another."""
    stored = []
    for _ in range(n):
        notice = make_notice(uuid.uuid4().hex)
        stored.append(StoredNotice(notice, await store_notice(js, session_id, notice)))
    return stored


async def test_find_command_by_id_alone(js: JetStreamContext) -> None:
    command = make_command()
    assert await find_command(js, command.command_id) is None
    await publish_command(js, command)
    assert await find_command(js, command.command_id) == command


async def test_find_notice_by_id_alone_whatever_the_session(js: JetStreamContext) -> None:
    command_id = uuid.uuid4().hex
    assert await find_notice(js, command_id) is None
    notice = make_notice(command_id)
    seq = await store_notice(js, uuid.uuid4().hex, notice)
    assert await find_notice(js, command_id) == StoredNotice(notice, seq)


async def test_relay_delivers_a_stored_notice_with_its_sequence_to_its_waiter_only(
    nc: Client, js: JetStreamContext
) -> None:
    relay = NoticeRelay()
    await relay.start(nc)
    try:
        mine, other = uuid.uuid4().hex, uuid.uuid4().hex
        async with relay.command(mine) as my_queue, relay.command(other) as other_queue:
            assert relay.waiters == 2
            notice = make_notice(mine)
            seq = await store_notice(js, uuid.uuid4().hex, notice)
            item = await my_queue.next(within=5)
            assert item == StoredNotice(notice, seq)
            assert other_queue.empty()
        assert relay.waiters == 0
    finally:
        await relay.stop()


async def test_resync_wakes_every_waiter() -> None:
    relay = NoticeRelay()
    async with relay.command("a" * 32) as qa, relay.command("b" * 32) as qb:
        await relay.resync()
        assert isinstance(await qa.next(within=0), Resync)
        assert isinstance(await qb.next(within=0), Resync)


@asynccontextmanager
async def lossy_relay(
    server: NatsServer, quiet: float
) -> AsyncIterator[tuple[NatsProxy, NoticeRelay]]:
    """A relay on a client whose NATS deliveries a proxy can lose."""
    async with nats_proxy(server.port) as proxy:
        client = await connect_test_client(proxy.url)
        relay = NoticeRelay(quiet=quiet)
        await relay.start(client)
        try:
            yield proxy, relay
        finally:
            await relay.stop()
            await client.close()


@dataclass
class LossySession:
    """A session's waiter on a relay whose live notices a proxy can lose."""

    proxy: NatsProxy
    relay: NoticeRelay
    session: str
    queue: Inbox[Item]


@pytest.fixture
async def lossy(nats_server: NatsServer) -> AsyncIterator[LossySession]:
    """A session's waiter on a lossy relay that never asks for a lost last notice."""
    session = uuid.uuid4().hex
    async with (
        lossy_relay(nats_server, quiet=60) as (proxy, relay),
        relay.session(session) as queue,
    ):
        yield LossySession(proxy, relay, session, queue)


async def test_relay_reads_live_notices_that_never_came_from_the_store(
    lossy: LossySession, js: JetStreamContext
) -> None:
    lossy.proxy.drop_deliveries("live.notice.", times=2)
    stored = await store_notices(js, lossy.session, 3)
    got = [await lossy.queue.next(within=5) for _ in stored]
    assert len(lossy.proxy.deliveries_dropped) == 2
    assert got == stored


async def test_relay_finds_a_lost_last_notice_by_asking_the_store(
    nats_server: NatsServer, js: JetStreamContext
) -> None:
    command_id = uuid.uuid4().hex
    async with (
        lossy_relay(nats_server, quiet=0.2) as (proxy, relay),
        relay.command(command_id) as queue,
    ):
        proxy.drop_deliveries("live.notice.", times=1)
        notice = make_notice(command_id)
        seq = await store_notice(js, uuid.uuid4().hex, notice)
        assert await queue.next(within=5) == StoredNotice(notice, seq)
    assert len(proxy.deliveries_dropped) == 1


async def test_relay_tells_every_waiter_to_look_in_the_store_after_a_long_hole(
    lossy: LossySession, js: JetStreamContext
) -> None:
    async with lossy.relay.command(uuid.uuid4().hex) as other:
        lossy.proxy.drop_deliveries("live.notice.", times=MAX_FILL + 1)
        stored = await store_notices(js, lossy.session, MAX_FILL + 2)
        assert isinstance(await lossy.queue.next(within=5), Resync)
        assert await lossy.queue.next(within=5) == stored[-1]
        assert isinstance(await other.next(within=5), Resync)
    assert len(lossy.proxy.deliveries_dropped) == MAX_FILL + 1


async def test_relay_does_not_relay_a_late_live_copy_of_a_notice_it_read_from_the_store(
    lossy: LossySession, js: JetStreamContext
) -> None:
    """A live copy held back, so that the next notice shows a hole and the relay reads
    it from the store, is not relayed a second time when it comes late."""
    lossy.proxy.hold_deliveries("live.notice.", times=1)
    late, after = await store_notices(js, lossy.session, 2)
    assert await lossy.queue.next(within=5) == late  # from the store
    assert await lossy.queue.next(within=5) == after  # live; it showed no hole
    lossy.proxy.release()
    (last,) = await store_notices(js, lossy.session, 1)
    assert await lossy.queue.next(within=5) == last  # not `late` again
    assert len(lossy.proxy.held) == 1


@pytest.mark.parametrize("read_lost", [False, True], ids=["read", "read-lost"])
async def test_relay_finds_a_lost_notice_after_nats_came_back(
    lossy: LossySession, js: JetStreamContext, read_lost: bool
) -> None:
    """After a reconnect the relay looks for holes from the store's last sequence, not
    from the first live notice (which would hide a lost one before it). If that read
    is lost, the relay reads it again without waiting for live notices to stop (the
    fixture's relay never finds them quiet), and every waiter looks in the store
    again after that read."""
    if read_lost:
        lossy.proxy.lose_acks(f"$JS.API.STREAM.INFO.{NOTICES_STREAM}", times=1)
    lossy.relay.unavailable()  # as on a disconnect, then the reconnect
    await lossy.relay.resync()
    assert isinstance(await lossy.queue.next(within=5), Unavailable)
    assert isinstance(await lossy.queue.next(within=5), Resync)
    if read_lost:
        assert lossy.proxy.acks_lost
        assert isinstance(await lossy.queue.next(within=5), Resync)  # after the read, again
    lossy.proxy.drop_deliveries("live.notice.", times=1)
    stored = await store_notices(js, lossy.session, 2)
    got = [await lossy.queue.next(within=5) for _ in stored]
    assert got == stored


async def test_relay_asking_the_store_while_live_notices_come_takes_no_alarm(
    nats_server: NatsServer, js: JetStreamContext
) -> None:
    """The relay asks the store for its last sequence (quiet, with waiters); live notices
    come and are relayed before the answer, which then ends before them. That is not
    NOTICES made again: no waiter is told to look in the store, nothing is relayed
    twice. (The answer was compared with what was relayed after it was asked.)"""
    session = uuid.uuid4().hex
    async with (
        lossy_relay(nats_server, quiet=0.2) as (proxy, relay),
        relay.session(session) as queue,
    ):
        proxy.hold_deliveries("_INBOX.", times=1)  # the relay's one request: the last's

        async def asked() -> bool | None:
            return True if proxy.held else None

        await eventually(asked)
        stored = await store_notices(js, session, 2)
        assert [await queue.next(within=5) for _ in stored] == stored
        proxy.release()  # the answer, from before those two
        assert await queue.next(within=1.5) is None


async def test_a_session_waiter_that_reads_slowly_holds_a_bounded_inbox(
    lossy: LossySession, js: JetStreamContext
) -> None:
    """Past MAX_WAITING notices waiting, the waiter is told to look in the store (the
    session stream reads them from its position) instead of holding every one."""
    stored = await store_notices(js, lossy.session, MAX_WAITING + 10)  # none read yet
    got: list[Item | None] = []
    while not got or got[-1] != stored[-1]:
        got.append(await lossy.queue.next(within=5))
    assert isinstance(got[0], Resync)
    assert 1 < len(got) <= 11
    assert got[1:] == stored[-(len(got) - 1) :]  # those that came after it, in order


async def test_a_session_waiter_is_not_handed_live_notices_while_holes_go_unseen(
    lossy: LossySession, js: JetStreamContext
) -> None:
    """After a reconnect, until the relay has read the store's last sequence, it cannot
    see a hole: a live notice may have passed a lost one. Handed to a session stream,
    it moved the stream's position past the lost one for good; the stream is told to
    read from the store instead (which holds both)."""
    lossy.proxy.lose_acks(f"$JS.API.STREAM.INFO.{NOTICES_STREAM}")  # the read keeps failing
    lossy.relay.unavailable()  # as on a disconnect, then the reconnect
    await lossy.relay.resync()
    assert isinstance(await lossy.queue.next(within=5), Unavailable)
    assert isinstance(await lossy.queue.next(within=5), Resync)
    lossy.proxy.drop_deliveries("live.notice.", times=1)
    lost, passing = await store_notices(js, lossy.session, 2)
    assert isinstance(await lossy.queue.next(within=5), Resync)  # not `passing` itself
    assert lossy.proxy.deliveries_dropped == [
        f"live.notice.{lossy.session}.{lost.notice.command_id}"
    ]
    assert passing.seq == lost.seq + 1


async def test_relay_tells_every_waiter_to_look_when_a_hole_cannot_be_read(
    lossy: LossySession, js: JetStreamContext
) -> None:
    lossy.proxy.drop_deliveries("live.notice.", times=1)
    lossy.proxy.lose_acks(f"$JS.API.STREAM.MSG.GET.{NOTICES_STREAM}")  # the hole's reads
    stored = await store_notices(js, lossy.session, 2)
    assert isinstance(await lossy.queue.next(within=5), Resync)
    assert await lossy.queue.next(within=5) == stored[-1]
    assert lossy.proxy.acks_lost


async def test_session_notices_after_reads_only_that_session_in_order(js: JetStreamContext) -> None:
    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    seqs = []
    for session in (mine, other, mine, other, mine):
        seq = await store_notice(js, session, make_notice(uuid.uuid4().hex))
        if session == mine:
            seqs.append(seq)
    found = [s.seq async for s in session_notices_after(js, mine, 0)]
    assert found == seqs
    assert [s.seq async for s in session_notices_after(js, mine, seqs[0])] == seqs[1:]
    assert [s.seq async for s in session_notices_after(js, mine, seqs[-1])] == []


async def test_relay_routes_by_session_too(nc: Client, js: JetStreamContext) -> None:
    relay = NoticeRelay()
    await relay.start(nc)
    try:
        mine, other = uuid.uuid4().hex, uuid.uuid4().hex
        async with relay.session(mine) as my_queue, relay.session(other) as other_queue:
            notice = make_notice(uuid.uuid4().hex)
            seq = await store_notice(js, mine, notice)
            assert await my_queue.next(within=5) == StoredNotice(notice, seq)
            assert other_queue.empty()
    finally:
        await relay.stop()


async def test_bucket_keys_lists_every_key_exactly_once(js: JetStreamContext) -> None:
    bucket = f"keys_{uuid.uuid4().hex[:8]}"
    kv = await js.create_key_value(bucket=bucket)
    assert await bucket_keys(js, bucket) == []  # an empty bucket is an empty list
    keys = [f"k{i}" for i in range(300)]
    await asyncio.gather(*(kv.put(k, b"v") for k in keys))
    await kv.put("k7", b"again")  # one key, however often written
    assert sorted(await bucket_keys(js, bucket)) == sorted(keys)
    await js.delete_key_value(bucket)
    with pytest.raises(NotFoundError):  # as nats-py's stream_info says it
        await bucket_keys(js, bucket)


async def test_bucket_keys_lists_past_the_servers_page_of_subjects(
    nc: Client, js: JetStreamContext
) -> None:
    """The server lists 100,000 subjects a request: a bucket with more was refused
    (a list read of a view that large failed); its keys are now read page by page."""
    bucket = f"keys_{uuid.uuid4().hex[:8]}"
    await js.create_key_value(KeyValueConfig(bucket=bucket, storage=StorageType.MEMORY))
    keys = [f"u{i % 3}.{i:06d}" for i in range(100_010)]
    for n, key in enumerate(keys, start=1):
        await nc.publish(f"$KV.{bucket}.{key}", b"v")  # a put without its ack: fast
        if n % 10_000 == 0:
            await nc.flush()

    async def stored() -> bool | None:
        return (await js.stream_info(f"KV_{bucket}")).state.messages == len(keys) or None

    await eventually(stored)
    listed = await bucket_keys(js, bucket)
    assert len(listed) == len(keys)
    assert set(listed) == set(keys)
    under = await bucket_keys(js, bucket, "u1.")  # a prefix of fewer than a page
    assert sorted(under) == [k for k in keys if k.startswith("u1.")]
    await js.delete_key_value(bucket)
