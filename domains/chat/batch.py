"""A batch: accepted as it is. Its messages go to their channels, each channel one event."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.domain import EventMeta
from domains.chat.commands import PostMessages
from domains.chat.events import BatchReceived, MessagesPosted, Posted


def decide(state: BatchReceived | None, command: PostMessages) -> list[msgspec.Struct]:
    """The batch's own event first (the guard), then one per channel, in first-seen order."""
    by_channel: dict[str, list[Posted]] = {}
    for m in command.messages:
        by_channel.setdefault(m.channel, []).append(Posted(m.user, m.text, m.sent_at))
    received = BatchReceived(len(command.messages), len(by_channel))
    return [received, *(MessagesPosted(c, posted) for c, posted in by_channel.items())]


def evolve(state: BatchReceived | None, event: Any, meta: EventMeta) -> BatchReceived | None:
    return event if isinstance(event, BatchReceived) else state
