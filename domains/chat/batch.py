"""A batch: accepted as it is; stored as its own event and its messages by channel shard.

Why shards: the server partitions events by a token of their subject, so
the events must be keyed by something of the channel. Keyed by the channel
itself, a batch of 1,000 messages over 500 channels of skewed popularity is
about 270 events, each with its headers to write and parse; keyed by one of
SHARDS groups of channels (a hash of the name), it is at most 64. Measured
(`python -m bench.chat_layout`): see the README, "Chat channel stats".
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from contracts.domain import MAX_PARTS, EventMeta, stable_shard
from domains.chat.commands import PostMessages
from domains.chat.events import BatchReceived, MessagesPosted, Posted

SHARDS: Final = 64


def shard_of(channel: str) -> str:
    """The channel's shard: the same in every process and every run."""
    return f"s{stable_shard(channel, SHARDS):02d}"


def decide(state: BatchReceived | None, command: PostMessages) -> list[msgspec.Struct]:
    """The batch's own event first (the guard), then one per shard, in first-seen order."""
    by_shard: dict[str, list[Posted]] = {}
    channels: dict[str, set[str]] = {}
    for m in command.messages:
        shard = shard_of(m.channel)
        by_shard.setdefault(shard, []).append(Posted(m.channel, m.user, m.text, m.sent_at))
        channels.setdefault(shard, set()).add(m.channel)
    events: list[msgspec.Struct] = [
        BatchReceived(len(command.messages), sum(len(c) for c in channels.values()))
    ]
    for shard, posted in by_shard.items():
        events += [MessagesPosted(shard, part) for part in _parts(posted, len(channels[shard]))]
    return events


def _parts(posted: list[Posted], channels: int) -> list[list[Posted]]:
    """A shard's messages, in pieces of at most MAX_PARTS channels each (rarely more than one:
    only a batch whose channels crowd into one shard)."""
    if channels <= MAX_PARTS:
        return [posted]
    pieces: list[list[Posted]] = []
    seen: set[str] = set()
    for message in posted:
        if message.channel not in seen and len(seen) == MAX_PARTS:
            pieces.append([])
            seen = set()
        if not pieces:
            pieces.append([])
        seen.add(message.channel)
        pieces[-1].append(message)
    return pieces


def evolve(state: BatchReceived | None, event: Any, meta: EventMeta) -> BatchReceived | None:
    return event if isinstance(event, BatchReceived) else state


def by_channel(event: MessagesPosted) -> dict[str, list[Posted]]:
    """The aggregator's split: each channel's messages of the event, in order."""
    parts: dict[str, list[Posted]] = {}
    for message in event.messages:
        parts.setdefault(message.channel, []).append(message)
    return parts
