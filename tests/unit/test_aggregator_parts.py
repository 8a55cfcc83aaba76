"""Pure parts of keyed events and aggregators: subjects, reading a keyed subject, the share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from contracts.events import read_event
from contracts.topology import KEYED_TRANSFORM, PARTITIONS
from domains.chat.events import BatchReceived, MessagesPosted
from reactor.eventstore import MAX_DECISION, EventStore
from reactor.members import Members
from tests.conftest import REGISTRY

HEADERS = {
    "Event-Type": "MessagesPosted",
    "Event-Version": "1",
    "Causation-Id": "c" * 32,
    "Occurred-At": datetime(2026, 11, 25, tzinfo=UTC).isoformat(),
}


def test_the_transform_puts_the_servers_partition_of_the_key_in_the_subject() -> None:
    assert KEYED_TRANSFORM.src == "evk.*.*"
    assert KEYED_TRANSFORM.dest == f"ev.{{{{wildcard(1)}}}}.{{{{partition({PARTITIONS},2)}}}}" + (
        ".{{wildcard(2)}}"
    )


def test_a_decision_publishes_its_own_events_first_and_keyed_ones_by_key() -> None:
    store = EventStore(cast("Any", None), REGISTRY)
    events = [BatchReceived(2, 2), MessagesPosted("s01", []), MessagesPosted("s02", [])]
    assert store.subjects("chat", "b1", events) == ["ev.chat.b1", "evk.chat.s01", "evk.chat.s02"]
    with pytest.raises(ValueError, match="starts with an event of its own"):
        store.subjects("chat", "b1", events[1:])
    with pytest.raises(ValueError, match="is not"):
        store.subjects("chat", "b1", [events[0], MessagesPosted("no.dots", [])])
    with pytest.raises(ValueError, match=f"at most {MAX_DECISION}"):
        store.subjects("chat", "b1", [events[0]] * (MAX_DECISION + 1))


def test_a_keyed_events_subject_gives_its_partition_and_key() -> None:
    stored = read_event(REGISTRY, "ev.chat.5.s01", 9, HEADERS, b'{"shard":"s01","messages":[]}')
    assert (stored.partition, stored.meta.aggregate, stored.meta.aggregate_id) == (5, "chat", "s01")
    plain = read_event(
        REGISTRY,
        "ev.chat.b1",
        8,
        {**HEADERS, "Event-Type": "BatchReceived"},
        (b'{"messages":1,"channels":1}'),
    )
    assert (plain.partition, plain.meta.aggregate_id) == (None, "b1")


def test_a_reactor_takes_its_share_and_hands_over_what_is_over_it() -> None:
    members = Members(cast("Any", None), cast("Any", None), "me")
    share = members.share(8)
    assert all(share.reserve(f"p{i}") for i in range(8))  # alone: all of them
    members.count = 2  # another reactor came
    assert share.limit == 4
    assert not share.reserve("p8")
    handed = [f"p{i}" for i in range(8) if share.over(f"p{i}")]
    assert len(handed) == 4  # counted off one by one: no more than over the share
    assert len(share.held) == 4
    members.count = 3
    assert share.limit == 3
