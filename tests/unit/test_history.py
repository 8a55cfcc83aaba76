"""An aggregate's history as the handler keeps it (`reactor.history`): pure, no NATS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.domain import EventMeta
from contracts.events import StoredEvent
from domains.videos.events import VideoPublished, VideoViewed
from domains.videos.views import VIDEOS, VIEWINGS
from reactor.handling import Loaded, Remembered
from reactor.history import History
from reactor.views import BadKey, key_of

AT = datetime(2026, 11, 29, tzinfo=UTC)


def stored(seq: int, command_id: str, viewer: str | None = None) -> StoredEvent:
    event = VideoPublished("o", "t", "u", "") if viewer is None else VideoViewed(f"w{seq}", viewer)
    meta = EventMeta(
        aggregate="video",
        aggregate_id="v",
        seq=seq,
        at=AT,
        type=type(event).__name__,
        command_id=command_id,
        correlation_id=command_id,
        session_id="s",
    )
    return StoredEvent(event, meta)


def seqs(events: object) -> list[int]:
    return [e.meta.seq for e in events]  # type: ignore[attr-defined]


def test_a_history_reads_as_the_events_it_was_given() -> None:
    events = [stored(3, "a"), stored(7, "b", "ann"), stored(9, "b", "bob")]
    history = History(events)
    assert list(history) == events
    assert len(history) == 3
    assert history[-1] == events[-1]
    assert history[1:] == events[1:]
    assert list(reversed(history)) == events[::-1]
    assert history.position == 9
    assert History().position == 0
    assert not History()


def test_the_events_of_a_command_are_found_by_its_id() -> None:
    history = History([stored(3, "a"), stored(7, "b", "ann"), stored(9, "b", "bob")])
    assert seqs(history.of_command("b")) == [7, 9]
    assert seqs(history.of_command("a")) == [3]
    assert history.of_command("c") == []


def test_a_longer_history_leaves_the_shorter_one_as_it_was() -> None:
    first = History([stored(1, "a")])
    second = first.plus([stored(2, "b", "ann")])
    third = second.plus([stored(3, "c", "bob")])
    assert seqs(first) == [1]
    assert seqs(second) == [1, 2]
    assert seqs(third) == [1, 2, 3]
    assert first.of_command("b") == []
    assert second.of_command("c") == []
    assert seqs(third.of_command("c")) == [3]
    assert second.position == 2
    with_other = first.plus([stored(5, "d", "cat")])  # two decisions on one state: a copy
    assert seqs(with_other) == [1, 5]
    assert seqs(third) == [1, 2, 3]
    assert seqs(with_other.of_command("d")) == [5]
    assert third.of_command("d") == []


def test_the_events_of_a_views_key_are_bounded_by_the_history_asked() -> None:
    short = History([stored(1, "a"), stored(2, "b", "ann"), stored(3, "c", "bob")])
    assert set(short.by_key(VIEWINGS, ["ann.v", "bob.v", "cat.v"], key_of)) == {"ann.v", "bob.v"}
    longer = short.plus([stored(4, "d", "ann"), stored(5, "e", "ann")])
    ann_then = short.by_key(VIEWINGS, ["ann.v"], key_of)["ann.v"]
    ann_now = longer.by_key(VIEWINGS, ["ann.v"], key_of)["ann.v"]
    assert seqs(ann_then) == [2]
    assert seqs(ann_now) == [2, 4, 5]
    assert seqs(ann_now[1:]) == [4, 5]
    assert ann_now[-1].meta.seq == 5
    assert seqs(longer.by_key(VIDEOS, ["v"], key_of)["v"]) == [1, 2, 3, 4, 5]
    assert seqs(short.by_key(VIDEOS, ["v"], key_of)["v"]) == [1, 2, 3]


def test_a_view_key_kv_cannot_store_is_refused() -> None:
    def viewing(viewer: str) -> StoredEvent:
        return stored(2, "a", viewer)

    assert key_of(VIEWINGS, viewing("ann-1_x/y=z")) == "ann-1_x/y=z.v"
    assert key_of(VIEWINGS, stored(1, "a")) is None  # not one of the view's events
    for viewer in ("", ".ann", "a..b", "a b", "é", "a*", "a>", "a\n", "²"):
        with pytest.raises(BadKey, match="not a valid KV key"):
            key_of(VIEWINGS, viewing(viewer))


def test_what_a_reactor_remembers_is_bounded_by_aggregates_and_by_events() -> None:
    """It was bounded by aggregates alone: a thousand long accounts, held whole."""

    def loaded(n: int) -> Loaded:
        return Loaded(History(stored(i + 1, f"c{i}", "ann") for i in range(n)), None)

    memory = Remembered(size=3, events=100)
    memory.put("a", loaded(40))
    memory.put("b", loaded(40))
    assert memory.events == 80
    memory.put("c", loaded(30))  # 110 events: the least recent goes
    assert (memory.get("a"), memory.events) == (None, 70)
    assert memory.get("b") is not None  # now the most recent
    memory.put("c", loaded(35))  # grown: counted once, as it is now
    assert memory.events == 75
    memory.put("d", loaded(1))
    memory.put("e", loaded(1))  # four aggregates: the least recent goes
    assert memory.get("b") is None
    assert [memory.get(s) is not None for s in "cde"] == [True, True, True]
    memory.put("huge", loaded(500))  # alone past the bound: kept, the rest go
    assert memory.get("huge") is not None
    assert [memory.get(s) for s in "cde"] == [None, None, None]
    assert memory.events == 500
