"""Chat channel stats: batches of messages in, per channel counts by 10-minute window out.

A batch (`POST /api/chat/messages`, up to 1,000 messages) is one command. It
is stored as one atomic batch of events: `BatchReceived` on the batch's own
subject, then one `MessagesPosted` per shard of channels (`batch.shard_of`),
keyed by shard, which the server puts in a partition by the shard's name.
The `chat_channels` aggregator splits each into its channels' messages and
folds them into the channels' records (`windows.count`); the reactors share
the partitions.
"""

from __future__ import annotations

from pathlib import Path

from contracts.domain import (
    Aggregate,
    Aggregator,
    CommandSpec,
    Domain,
    Event,
    GetRead,
    ListRead,
    WebPage,
)
from domains.chat.batch import by_channel, decide, evolve
from domains.chat.commands import PostMessages, check
from domains.chat.events import BatchReceived, MessagesPosted
from domains.chat.windows import ChannelStats, Chatters, busiest, count

MAX_BODY = 1024 * 1024  # a batch of 1,000 messages of up to 500 characters fits

CHANNELS = Aggregator(
    "chat_channels",
    state=ChannelStats,
    memo=Chatters,
    events=(MessagesPosted,),
    apply=count,
    rank=busiest,
    split=by_channel,
)


def shard(event: MessagesPosted) -> str:
    return event.shard


DOMAIN = Domain(
    name="chat",
    title="Chat",
    commands=(
        CommandSpec(
            PostMessages,
            aggregate="chat",
            collection="chat/messages",
            max_body=MAX_BODY,
            check=check,
            summary="Post a batch of chat messages (up to 1,000; accepted whole or not at all)",
        ),
    ),
    events=(Event(BatchReceived), Event(MessagesPosted, key=shard)),
    aggregates=(Aggregate("chat", initial=None, decide=decide, evolve=evolve),),
    aggregators=(CHANNELS,),
    reads=(
        ListRead("chat/channels", CHANNELS.name, summary="Channels, busiest first"),
        GetRead(
            "chat/channels",
            CHANNELS.name,
            param="channel",
            summary="One channel: its total, late messages and recent 10-minute windows",
        ),
    ),
    page=WebPage(
        "Chat",
        "/chat",
        Path(__file__).parent / "web",
        summary="Channel stats at volume: the busiest channels and their windows, live.",
    ),
)
