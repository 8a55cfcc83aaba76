"""Reading EVENTS in order (pulled ahead into a buffer): large events, a consumer lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime

import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.events import TooNew, event_headers
from contracts.topology import EVENTS_STREAM
from reactor.eventstore import EventStore
from reactor.reader import EventReader
from tests.conftest import REGISTRY
from tests.domains.memos import MemoWritten, WriteMemo
from tests.helpers import envelope, eventually

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def written(store: EventStore, texts: list[str]) -> None:
    for text in texts:
        await store.append(envelope(WriteMemo("x")), "memo", [MemoWritten(text)], expected=0, at=AT)


async def read_all(reader: EventReader) -> list[str]:
    found: list[str] = []
    while (batch := await reader.next_batch(wait=0.5)).last_seq is not None:
        found += [e.event.text for e in batch.events]
    return found


async def test_large_events_come_in_order_a_bounded_request_at_a_time(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    texts = [f"{i:02d}" + "x" * 700_000 for i in range(30)]  # 21 MB: several requests' worth
    await written(EventStore(fresh_nc, REGISTRY), texts)
    reader = EventReader(fresh_js, REGISTRY, ["ev.memo.>"], 0, batch=1024)
    try:
        assert await read_all(reader) == texts
    finally:
        await reader.close()


async def test_a_lost_consumer_is_an_error_then_made_again_from_the_position(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    store = EventStore(fresh_nc, REGISTRY)
    await written(store, ["a", "b"])
    reader = EventReader(fresh_js, REGISTRY, ["ev.memo.>"], 0)
    try:
        assert await read_all(reader) == ["a", "b"]
        for info in await fresh_js.consumers_info(EVENTS_STREAM):
            await fresh_js.delete_consumer(EVENTS_STREAM, info.name)
        await written(store, ["c"])
        with pytest.raises(nats.errors.Error):
            await read_all(reader)  # the consumer's deletion reaches the open request
        assert await read_all(reader) == ["c"]  # from where it had got to, nothing twice
    finally:
        await reader.close()


async def test_the_end_is_read_only_when_its_consumer_says_so(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    store = EventStore(fresh_nc, REGISTRY)
    await written(store, ["a", "b"])
    others = EventReader(fresh_js, REGISTRY, ["ev.location.>"], 0)  # none of its subjects
    reader = EventReader(fresh_js, REGISTRY, ["ev.memo.>"], 0)
    try:
        assert await read_all(others) == []
        assert await others.read_to_end() == 2  # past the events of other subjects
        assert await read_all(reader) == ["a", "b"]
        assert await reader.read_to_end() == 2
        # Its pull goes deaf (as one lost in a reconnect): an event written now
        # does not arrive, and a fetch bringing nothing is not the end.
        assert reader._pull is not None
        await reader._pull.close()
        await written(store, ["c"])
        assert (await reader.next_batch(wait=0.3)).last_seq is None
        assert await reader.read_to_end() is None
        # Its consumer gone (as after the server's restart): an error, then read
        # again from where it had got to.
        for info in await fresh_js.consumers_info(EVENTS_STREAM):
            await fresh_js.delete_consumer(EVENTS_STREAM, info.name)
        with pytest.raises(nats.errors.Error):
            await reader.read_to_end()
        assert await read_all(reader) == ["c"]
        assert await reader.read_to_end() == 3
    finally:
        await reader.close()
        await others.close()


async def _lost_on_the_way(reader: EventReader, write: Awaitable[None]) -> None:
    """`write` an event that the server delivers and the reader never receives
    (as one in the socket when a connection drops): its pull drops the next
    message that comes."""
    pull = reader._pull
    assert pull is not None
    keep = pull._on_msg
    dropped: list[Msg] = []

    async def dropping(msg: Msg) -> None:
        if msg.data and not dropped:
            dropped.append(msg)
            return
        await keep(msg)

    await pull.close()
    pull._on_msg = dropping  # type: ignore[method-assign]
    await pull.start()  # listening again, through `dropping`
    await write

    async def gone() -> bool | None:
        return True if dropped else None

    await eventually(gone)


@pytest.fixture
async def lost_b(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> AsyncIterator[tuple[EventStore, EventReader]]:
    """A reader that has read "a", and "b" written after it and lost on its way."""
    store = EventStore(fresh_nc, REGISTRY)
    await written(store, ["a"])
    reader = EventReader(fresh_js, REGISTRY, ["ev.memo.>"], 0)
    try:
        assert await read_all(reader) == ["a"]
        await _lost_on_the_way(reader, written(store, ["b"]))
        yield store, reader
    finally:
        await reader.close()


async def test_an_event_lost_on_its_way_is_read_again_when_the_next_one_comes(
    lost_b: tuple[EventStore, EventReader],
) -> None:
    store, reader = lost_b
    await written(store, ["c"])  # comes with a gap in the consumer's sequence
    assert await read_all(reader) == ["b", "c"]


async def test_an_event_lost_on_its_way_with_none_after_it_is_read_again(
    lost_b: tuple[EventStore, EventReader],
) -> None:
    _, reader = lost_b
    assert (await reader.next_batch(wait=0.2)).last_seq is None
    assert await reader.read_to_end() is None  # delivered: on its way, perhaps
    assert await reader.read_to_end() is None  # still not here: lost; read again
    assert await read_all(reader) == ["b"]
    assert await reader.read_to_end() == 2


@pytest.mark.parametrize(
    ("type_name", "version"),
    [("MemoWritten", 2), ("MemoShredded", 1)],
    ids=["a-newer-version", "an-unknown-type"],
)
async def test_an_event_of_a_newer_process_stops_the_reader_before_it(
    fresh_nc: Client, fresh_js: JetStreamContext, type_name: str, version: int
) -> None:
    """An event of a schema version, or a type, this process does not know (a newer
    process wrote it: a rolling upgrade) is not skipped, nor read with the old schema:
    the reader reads up to it, then stops there, so its job waits for a reactor that
    knows it (a job's position never passes an event it did not apply)."""
    store = EventStore(fresh_nc, REGISTRY)
    await written(store, ["a"])
    headers = event_headers(envelope(WriteMemo("x")), type_name, version, AT, 1)
    await fresh_js.publish("ev.memo.newer", b'{"text": "b", "mood": "new"}', headers=headers)
    await written(store, ["c"])
    reader = EventReader(fresh_js, REGISTRY, ["ev.memo.>"], 0)
    try:
        first = await reader.next_batch(wait=2)
        assert [e.event.text for e in first.events] == ["a"]
        for _ in range(2):  # and again: it stays where it is
            with pytest.raises(TooNew):
                await reader.next_batch(wait=2)
            assert reader.position == first.last_seq
    finally:
        await reader.close()
