"""Chat as pure functions: a batch's events, its checks, and the windows and late policy."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.domain import MAX_PARTS, EventMeta
from domains.chat.batch import SHARDS, by_channel, decide, shard_of
from domains.chat.commands import MAX_CHANNELS, ChatMessage, PostMessages, check
from domains.chat.events import BatchReceived, MessagesPosted, Posted
from domains.chat.windows import GRACE, KEEP, WINDOW, ChannelStats, Chatters, count

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a window's start: 12:00 is 72 windows a day
META = EventMeta("chat", "s00", 1, T0, "MessagesPosted", "c", "c", "s")


def msg(channel: str, user: str, at: datetime, text: str = "hi") -> ChatMessage:
    return ChatMessage(channel, user, text, at)


def posted(user: str, at: datetime, channel: str = "general") -> Posted:
    return Posted(channel, user, "hi", at)


def fold(*batches: list[Posted]) -> tuple[ChannelStats, Chatters]:
    stats: ChannelStats | None = None
    memo: Chatters | None = None
    for messages in batches:
        stats, memo = count(stats, memo, messages, META)
    assert stats is not None
    assert memo is not None
    return stats, memo


def windows(stats: ChannelStats) -> list[tuple[str, int, int]]:
    return [(w.start.strftime("%H:%M"), w.count, w.chatters) for w in stats.windows]


# ---- the batch ------------------------------------------------------------------------


def test_a_batch_is_its_own_event_then_one_per_shard_with_every_message_once_in_order() -> None:
    batch = PostMessages(
        [msg(f"c{i % 7}", f"u{i}", T0 + timedelta(seconds=i), f"text {i}") for i in range(50)]
    )
    events = decide(None, batch)
    assert events[0] == BatchReceived(messages=50, channels=7)
    slices = events[1:]
    assert all(isinstance(e, MessagesPosted) for e in slices)
    shards = [e.shard for e in slices if isinstance(e, MessagesPosted)]
    assert len(shards) == len(set(shards)) == len({shard_of(f"c{i}") for i in range(7)})
    stored = [m for e in slices if isinstance(e, MessagesPosted) for m in e.messages]
    assert sorted(m.text for m in stored) == sorted(f"text {i}" for i in range(50))
    for event in slices:
        assert isinstance(event, MessagesPosted)
        assert {shard_of(m.channel) for m in event.messages} == {event.shard}
        for messages in by_channel(event).values():  # each channel's in the order sent
            assert messages == sorted(messages, key=lambda m: m.sent_at)


def test_a_channels_shard_is_stable_and_spread() -> None:
    assert shard_of("general") == shard_of("general") == "s10"  # crc32: the same in every run
    assert len({shard_of(f"channel-{i}") for i in range(1000)}) == SHARDS


def test_a_shard_crowded_with_channels_is_stored_in_pieces_an_aggregator_can_write() -> None:
    crowded = [c for c in (f"x{i}" for i in range(100_000)) if shard_of(c) == "s00"]
    channels = crowded[: MAX_PARTS + 10]
    events = decide(None, PostMessages([msg(c, "u", T0) for c in channels]))
    pieces = [e for e in events if isinstance(e, MessagesPosted)]
    assert [len(by_channel(p)) for p in pieces] == [MAX_PARTS, 10]
    assert [m.channel for p in pieces for m in p.messages] == channels


def test_the_check_refuses_messages_from_the_future_and_too_many_channels() -> None:
    now = T0
    ok = PostMessages([msg("a", "u", now + timedelta(seconds=59)), msg("b", "u", now)])
    assert check(ok, now) == []
    ahead = PostMessages([msg("a", "u", now), msg("a", "u", now + timedelta(minutes=2))])
    assert [e.loc for e in check(ahead, now)] == ["$.messages[1].sent_at"]
    crowd = PostMessages([msg(f"c{i}", "u", now) for i in range(MAX_CHANNELS + 1)])
    (error,) = check(crowd, now)
    assert error.loc == "$.messages"
    assert "1000 channels" in error.msg
    many = PostMessages([msg("a", "u", now + timedelta(hours=1)) for _ in range(100)])
    assert len(check(many, now)) == 20  # said 20 times, not 100


def test_the_check_refuses_messages_from_before_1970() -> None:
    year_one = datetime.fromisoformat("0001-01-01T00:00:00+01:00")  # year 0 in UTC
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    batch = PostMessages([msg("a", "u", epoch), msg("a", "u", year_one)])
    [error] = check(batch, T0)
    assert (error.loc, error.msg) == ("$.messages[1].sent_at", "is before 1970-01-01T00:00:00Z")


def test_a_message_whose_window_has_no_date_is_late_not_a_crash() -> None:
    """Stored before the check refused such dates: the channel's fold goes on (a fold
    that raises stops the aggregator's whole partition, event after event)."""
    year_one = datetime.fromisoformat("0001-01-01T00:00:00+01:00")
    stats, _ = fold([posted("a", year_one), posted("b", T0)])
    assert (stats.total, stats.late, windows(stats)) == (2, 1, [("12:00", 1, 1)])


def test_the_schema_refuses_a_bad_message_at_its_index() -> None:
    raw = {
        "messages": [
            {"channel": "ok", "user": "u", "text": "t", "sent_at": "2026-11-25T12:00:00Z"},
            {"channel": "not ok", "user": "u", "text": "t", "sent_at": "2026-11-25T12:00:00Z"},
        ]
    }
    with pytest.raises(msgspec.ValidationError, match=r"\$\.messages\[1\]\.channel"):
        msgspec.convert(raw, PostMessages)
    naive = {"messages": [{"channel": "a", "user": "u", "text": "t", "sent_at": "2026-11-25T12"}]}
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(naive, PostMessages)
    for field in ("user", "text"):  # a message's fields are not trimmed: "  " was taken
        blank = {"channel": "a", "user": "u", "text": "t", "sent_at": "2026-11-25T12:00:00Z"}
        with pytest.raises(msgspec.ValidationError, match=rf"\$\.messages\[0\]\.{field}"):
            msgspec.convert({"messages": [{**blank, field: "  "}]}, PostMessages)


# ---- windows and the late policy ------------------------------------------------------------


def test_messages_count_in_their_epoch_aligned_ten_minute_window_start_inclusive() -> None:
    stats, _ = fold(
        [
            posted("ann", T0 - timedelta(microseconds=1)),  # 11:59:59.999999: the 11:50 window
            posted("ann", T0),  # 12:00:00 exactly: the 12:00 window
            posted("bob", T0 + timedelta(minutes=9, seconds=59)),
            posted("ann", T0 + timedelta(minutes=3)),
        ]
    )
    assert windows(stats) == [("12:00", 3, 2), ("11:50", 1, 1)]  # newest first
    assert (stats.total, stats.late) == (4, 0)
    assert stats.windows[0].end - stats.windows[0].start == timedelta(seconds=WINDOW)


def test_a_message_whose_window_closed_more_than_the_grace_ago_is_late_not_dropped() -> None:
    now = T0 + timedelta(minutes=30)
    stats, memo = fold(
        [posted("ann", now)],
        [posted("old", now - timedelta(hours=1))],  # its window ended 50 min before the clock
    )
    assert (stats.total, stats.late) == (2, 1)
    assert windows(stats) == [("12:30", 1, 1)]
    assert list(memo.open) == [str(int(now.timestamp()))]


def test_the_grace_is_measured_from_the_windows_end_by_the_channels_newest_message() -> None:
    end = T0 + timedelta(seconds=WINDOW)  # the 12:00 window ends at 12:10
    inside = end + timedelta(seconds=GRACE) - timedelta(microseconds=1)
    stats, _ = fold([posted("a", inside)], [posted("b", T0 + timedelta(minutes=5))])
    assert (stats.late, windows(stats)[-1]) == (0, ("12:00", 1, 1))  # still within the grace
    stats, _ = fold([posted("a", end + timedelta(seconds=GRACE))], [posted("b", T0)])
    assert stats.late == 1  # the grace has run out exactly


def test_an_old_message_in_a_new_channel_opens_its_window() -> None:
    stats, _ = fold([posted("a", T0 - timedelta(days=1))])
    assert (stats.late, stats.total, len(stats.windows)) == (0, 1, 1)  # nothing newer seen yet


def test_closed_windows_keep_their_counts_and_forget_their_users() -> None:
    stats, memo = fold(
        [posted("a", T0), posted("b", T0), posted("a", T0)],
        [posted("c", T0 + timedelta(minutes=20))],  # 12:00's end + grace is behind the clock
    )
    assert windows(stats) == [("12:20", 1, 1), ("12:00", 3, 2)]
    assert list(memo.open) == [str(int((T0 + timedelta(minutes=20)).timestamp()))]


def test_a_record_keeps_the_newest_windows() -> None:
    batches = [[posted("a", T0 + timedelta(minutes=10 * i))] for i in range(KEEP + 5)]
    stats, memo = fold(*batches)
    assert len(stats.windows) == KEEP
    assert stats.windows[0].start == T0 + timedelta(minutes=10 * (KEEP + 4))
    assert stats.total == KEEP + 5
    assert len(memo.open) == 2  # the newest, and the one before it (its grace runs on)


# ---- properties --------------------------------------------------------------------------

USERS = st.sampled_from(["ann", "bob", "cyd", "dee"])
# Within two hours of T0 (12 windows): every window stays in the record.
OFFSETS = st.integers(min_value=0, max_value=2 * 3600 - 1)
MESSAGES = st.lists(st.tuples(USERS, OFFSETS), min_size=1, max_size=60)


def reference(messages: list[tuple[str, int]]) -> tuple[int, dict[int, tuple[int, int]]]:
    """The policy stated plainly, one message at a time: (late, {window: (count, users)})."""
    clock: int | None = None
    late = 0
    seen: defaultdict[int, set[str]] = defaultdict(set)
    counts: defaultdict[int, int] = defaultdict(int)
    for user, offset in messages:
        start = offset // WINDOW * WINDOW
        if clock is not None and start + WINDOW + GRACE <= clock:
            late += 1
            continue
        counts[start] += 1
        seen[start].add(user)
        clock = offset if clock is None else max(clock, offset)
    return late, {s: (counts[s], len(seen[s])) for s in counts}


def as_posted(messages: list[tuple[str, int]]) -> list[Posted]:
    return [posted(user, T0 + timedelta(seconds=offset)) for user, offset in messages]


@given(MESSAGES, st.integers(min_value=1, max_value=60))
@settings(max_examples=300, deadline=None)
def test_the_fold_is_the_policy_however_the_messages_are_split_into_events(
    messages: list[tuple[str, int]], size: int
) -> None:
    batches = [as_posted(messages[i : i + size]) for i in range(0, len(messages), size)]
    stats, _ = fold(*batches)
    late, expected = reference(messages)
    assert (stats.total, stats.late) == (len(messages), late)
    found = {int((w.start - T0).total_seconds()): (w.count, w.chatters) for w in stats.windows}
    assert found == expected
    assert stats.total == stats.late + sum(w.count for w in stats.windows)


@given(MESSAGES, st.integers(min_value=0, max_value=60))
@settings(max_examples=300, deadline=None)
def test_state_stored_and_read_back_between_events_folds_on_the_same(
    messages: list[tuple[str, int]], cut: int
) -> None:
    """What a crash does: the record and memo stored, a new worker reading them back."""
    first, rest = as_posted(messages[:cut]), as_posted(messages[cut:])
    whole, _ = fold(*(b for b in (first, rest) if b))
    stats: ChannelStats | None = None
    memo: Chatters | None = None
    if first:
        stats, memo = count(None, None, first, META)
        stats = msgspec.json.decode(msgspec.json.encode(stats), type=ChannelStats)
        memo = msgspec.json.decode(msgspec.json.encode(memo), type=Chatters)
    if rest:
        stats, memo = count(stats, memo, rest, META)
    assert msgspec.json.encode(stats) == msgspec.json.encode(whole)


@given(st.lists(st.tuples(USERS, st.integers(0, GRACE - 1)), min_size=1, max_size=40), st.randoms())
@settings(max_examples=200, deadline=None)
def test_messages_out_of_order_by_less_than_the_grace_count_as_in_order(
    messages: list[tuple[str, int]], rng: object
) -> None:
    shuffled = list(messages)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    in_order, _ = fold(as_posted(sorted(messages, key=lambda m: m[1])))
    any_order, _ = fold(as_posted(shuffled))
    assert any_order.late == in_order.late == 0
    assert windows(any_order) == windows(in_order)
