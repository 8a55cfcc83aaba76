"""Channel stats: per channel the total, and per 10-minute window the count and the chatters.

Windows are tumbling and epoch-aligned, `[start, start + 10 min)` by the
message's `sent_at`. A channel's clock is the newest `sent_at` it has seen
(event time, as Kafka Streams' stream time, but per channel): a message
whose window ended GRACE or more before the clock is **late**: counted in
`total` and `late`, in no window (never dropped). So lateness depends on the
messages and their order in the event store only, not on when a reactor
got to them: a rebuild, a crash and a redelivery all count the same, and
messages up to GRACE out of order count as if in order.

A window's chatters are the distinct users of its on-time messages. Their
names are kept (in the memo) only while the window can still change: once
it is closed (its end + GRACE is behind the clock) only the counts stay.
The record keeps the KEEP newest windows.

`count` is the aggregator's fold: it changes the record and memo it is given
(the machinery owns them) and returns them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec

from contracts.domain import EventMeta
from domains.chat.events import Posted

WINDOW: Final = 600  # seconds: 10 minutes
GRACE: Final = 300  # seconds after a window's end during which it still takes messages
KEEP: Final = 12  # windows in a record: the last two hours of a busy channel


class Window(msgspec.Struct):
    start: datetime
    end: datetime
    count: int  # on-time messages sent in [start, end)
    chatters: int  # distinct users among them


class ChannelStats(msgspec.Struct):
    """A channel's record: what `GET /api/chat/channels/{channel}` answers."""

    channel: str
    total: int  # every message, late ones included
    late: int  # messages that came after their window had closed
    windows: list[Window]  # newest first, at most KEEP
    newest_sent_at: datetime | None = None  # the channel's clock


class Chatters(msgspec.Struct):
    """The users already counted in each open window, by the window's start (epoch
    seconds, as text: stored sorted, so that an unchanged memo is not written again)."""

    open: dict[str, set[str]]


def window_start(sent_at: datetime) -> int:
    """The epoch second the message's window starts at."""
    return int(sent_at.timestamp() // WINDOW) * WINDOW


def is_late(start: int, clock: float | None) -> bool:
    """Whether a message of the window starting at `start` is late on a channel at `clock`."""
    return clock is not None and start + WINDOW + GRACE <= clock


def count(
    stats: ChannelStats | None, chatters: Chatters | None, messages: list[Posted], meta: EventMeta
) -> tuple[ChannelStats, Chatters]:
    """Fold one channel's messages of one event (in order) into its stats and open windows."""
    stats = stats or ChannelStats(messages[0].channel, 0, 0, [])
    chatters = chatters or Chatters({})
    newest = stats.newest_sent_at
    clock = newest.timestamp() if newest is not None else None
    windows = {int(w.start.timestamp()): w for w in stats.windows}
    for message in messages:  # the hot loop of the aggregator: kept to plain operations
        stats.total += 1
        sent = message.sent_at.timestamp()
        start = int(sent // WINDOW) * WINDOW  # window_start
        if clock is not None and start + WINDOW + GRACE <= clock:  # is_late
            stats.late += 1
            continue
        window = windows.get(start)
        if window is None:
            try:
                window = windows[start] = _window(start)
            except (ValueError, OverflowError):  # no date (before year 1): in no window
                stats.late += 1
                continue
        window.count += 1
        users = chatters.open.setdefault(str(start), set())
        if message.user not in users:
            users.add(message.user)
            window.chatters += 1
        if clock is None or sent > clock:
            clock, newest = sent, message.sent_at
    stats.newest_sent_at = newest
    stats.windows = sorted(windows.values(), key=lambda w: w.start, reverse=True)[:KEEP]
    kept = {int(w.start.timestamp()) for w in stats.windows}
    for key in list(chatters.open):
        if is_late(int(key), clock) or int(key) not in kept:
            del chatters.open[key]  # closed: its count is final
    return stats, chatters


def _window(start: int) -> Window:
    return Window(
        datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + WINDOW, UTC), 0, 0
    )


def busiest(stats: ChannelStats) -> int:
    """The channels list's order: most messages first."""
    return stats.total
