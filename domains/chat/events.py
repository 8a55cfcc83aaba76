"""What happened: a batch received, and its messages by channel shard (a keyed event)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class BatchReceived(msgspec.Struct, frozen=True):
    """A batch was accepted (stored first, on the batch's own subject: the guard that
    keeps a redelivered batch from being stored twice)."""

    messages: int
    channels: int


# gc=False: an aggregator decodes hundreds of thousands of these; they hold no cycles.
class Posted(msgspec.Struct, frozen=True, gc=False):
    channel: str
    user: str
    text: str
    sent_at: datetime


class MessagesPosted(msgspec.Struct, frozen=True):
    """The messages of one batch whose channels are in one shard, in the order sent.

    Keyed by shard: stored at ev.chat.<partition>.<shard>, the partition the
    server's partition() gives the shard, so a channel's messages are always
    in the same partition, in order.
    """

    shard: str
    messages: list[Posted]
