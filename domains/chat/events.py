"""What happened: a batch received, and each channel's share of it (a keyed event)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class BatchReceived(msgspec.Struct, frozen=True):
    """A batch was accepted (stored first, on the batch's own subject: the guard that
    keeps a redelivered batch from being stored twice)."""

    messages: int
    channels: int


class Posted(msgspec.Struct, frozen=True):
    user: str
    text: str
    sent_at: datetime


class MessagesPosted(msgspec.Struct, frozen=True):
    """The messages of one batch in one channel, in the order they were sent to us.

    Keyed by channel: stored at ev.chat.<partition>.<channel>, the partition
    the server's partition() gives the channel.
    """

    channel: str
    messages: list[Posted]
