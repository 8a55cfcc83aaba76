"""The event store and its atomic batches, against a real nats-server (2.12+)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts.topology import EVENTS_STREAM, MAX_EVENT_BYTES, event_subject
from reactor.batch import BatchRejected, Message, publish_atomic
from reactor.eventstore import Conflict, EventStore
from tests.conftest import REGISTRY
from tests.domains.memos import MemoFiled, MemoStamped, MemoWritten, WriteMemo
from tests.helpers import envelope, stream_messages

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(nc: Client) -> EventStore:
    return EventStore(nc, REGISTRY)


async def test_one_event_is_appended_and_loaded_with_its_meta(
    store: EventStore, js: JetStreamContext
) -> None:
    command = envelope(WriteMemo("hello"))
    appended = await store.append(command, "memo", [MemoWritten("hello")], expected=0, at=AT)
    assert appended.first_seq == appended.last_seq
    (stored,) = await store.load("memo", command.aggregate_id)
    assert stored.event == MemoWritten("hello")
    meta = stored.meta
    assert (meta.aggregate, meta.aggregate_id, meta.seq) == (
        "memo",
        command.aggregate_id,
        appended.last_seq,
    )
    assert (meta.command_id, meta.session_id, meta.at) == (
        command.command_id,
        command.session_id,
        AT,
    )
    raw = await js.get_msg(EVENTS_STREAM, appended.last_seq)
    assert raw.headers is not None
    assert raw.headers["Nats-Msg-Id"] == f"{command.command_id}:1"
    assert raw.headers["Event-Type"] == "MemoWritten"


async def test_a_decision_of_several_events_is_one_contiguous_batch(store: EventStore) -> None:
    command = envelope(WriteMemo("two"))
    events = [MemoWritten("two"), MemoFiled("inbox", "high")]
    appended = await store.append(command, "memo", events, expected=0, at=AT)
    assert appended.last_seq == appended.first_seq + 1
    loaded = await store.load("memo", command.aggregate_id)
    assert [e.event for e in loaded] == events
    assert [e.meta.seq for e in loaded] == [appended.first_seq, appended.last_seq]


async def test_a_stale_expected_sequence_rejects_the_whole_batch(
    store: EventStore, js: JetStreamContext
) -> None:
    command = envelope(WriteMemo("x"))
    await store.append(command, "memo", [MemoWritten("x")], expected=0, at=AT)
    before = await stream_messages(js, EVENTS_STREAM)
    other = envelope(MemoStamped("a"), aggregate_id=command.aggregate_id)
    with pytest.raises(Conflict):  # decided on an empty memo: stale
        await store.append(other, "memo", [MemoStamped("a"), MemoStamped("b")], expected=0, at=AT)
    assert await stream_messages(js, EVENTS_STREAM) == before
    assert len(await store.load("memo", command.aggregate_id)) == 1


async def test_a_redelivered_decision_is_refused_as_a_conflict(
    store: EventStore, js: JetStreamContext
) -> None:
    single, batch = envelope(WriteMemo("1")), envelope(WriteMemo("2"))
    await store.append(single, "memo", [MemoWritten("1")], expected=0, at=AT)
    events = [MemoWritten("2"), MemoFiled("inbox", "normal")]
    await store.append(batch, "memo", events, expected=0, at=AT)
    before = await stream_messages(js, EVENTS_STREAM)
    with pytest.raises(Conflict):  # same message id within the duplicate window
        await store.append(single, "memo", [MemoWritten("1")], expected=0, at=AT)
    with pytest.raises(Conflict):
        await store.append(batch, "memo", events, expected=0, at=AT)
    assert await stream_messages(js, EVENTS_STREAM) == before


async def test_an_aggregate_of_many_events_loads_whole_and_in_order(store: EventStore) -> None:
    command = envelope(WriteMemo("long"))
    await store.append(command, "memo", [MemoWritten("long")], expected=0, at=AT)
    position = (await store.load("memo", command.aggregate_id))[-1].meta.seq
    for i in range(600):  # more than two direct-get batches of 256
        stamp = envelope(MemoStamped(str(i)), aggregate_id=command.aggregate_id)
        position = (
            await store.append(stamp, "memo", [MemoStamped(str(i))], expected=position, at=AT)
        ).last_seq
    loaded = await store.load("memo", command.aggregate_id)
    assert len(loaded) == 601
    assert [e.event.stamp for e in loaded[1:]] == [str(i) for i in range(600)]
    assert [e.meta.seq for e in loaded] == sorted(e.meta.seq for e in loaded)


async def test_an_unknown_aggregate_loads_empty(store: EventStore) -> None:
    assert await store.load("memo", uuid.uuid4().hex) == []


async def test_a_load_no_server_answers_is_an_outage_not_an_empty_aggregate(
    fresh_nc: Client,
) -> None:
    """No server holds EVENTS (its one server down in a cluster, JetStream starting): the
    direct get meets no responders (a 503 status). Taken as "no more events", a command
    on an aggregate that exists was decided on an empty one (refused as unknown, acked)."""
    store = EventStore(fresh_nc, REGISTRY, timeout=1.0)
    with pytest.raises(nats.errors.NoRespondersError):
        await store.load("memo", uuid.uuid4().hex)


async def test_a_batch_with_one_bad_message_stores_none_of_it(
    nc: Client, js: JetStreamContext
) -> None:
    subject = event_subject("memo", uuid.uuid4().hex)
    before = await stream_messages(js, EVENTS_STREAM)
    messages = [
        Message(subject, b"{}", {}),
        Message(subject, b"x" * (MAX_EVENT_BYTES + 1), {}),  # over the stream's message limit
        Message(subject, b"{}", {}),
    ]
    with pytest.raises(BatchRejected):
        await publish_atomic(nc, messages)
    assert await stream_messages(js, EVENTS_STREAM) == before


async def test_a_batch_reports_its_codes(nc: Client, js: JetStreamContext) -> None:
    subject = event_subject("memo", uuid.uuid4().hex)
    ids = [uuid.uuid4().hex, uuid.uuid4().hex]
    batch = [Message(subject, b"{}", {"Nats-Msg-Id": i}) for i in ids]
    ack = await publish_atomic(nc, batch)
    assert ack.stream == EVENTS_STREAM
    assert ack.size == 2
    with pytest.raises(BatchRejected) as stale:
        await publish_atomic(nc, batch, first_headers={"Nats-Expected-Last-Subject-Sequence": "0"})
    assert stale.value.err_code in (10164, 10201)
    with pytest.raises(BatchRejected) as dup:
        await publish_atomic(nc, batch)
    assert dup.value.err_code == 10201
