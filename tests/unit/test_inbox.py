"""A waiter's inbox and a stream's channel: woken by an item, the deadline or the end."""

from __future__ import annotations

import asyncio

from api.eventstream import Channel
from api.inbox import Inbox


async def test_an_item_put_wakes_the_waiter_with_it() -> None:
    inbox: Inbox[str] = Inbox()
    waiting = asyncio.ensure_future(inbox.next(within=5))
    await asyncio.sleep(0)
    inbox.put_nowait("notice")
    assert await asyncio.wait_for(waiting, 1) == "notice"


async def test_items_come_out_in_the_order_they_went_in() -> None:
    inbox: Inbox[int] = Inbox()
    for n in range(3):
        inbox.put_nowait(n)
    assert [await inbox.next(), await inbox.next(), await inbox.next()] == [0, 1, 2]
    assert inbox.empty()


async def test_a_bounded_put_past_its_bound_leaves_one_item_in_place_of_them_all() -> None:
    """A client reading slowly holds a bounded inbox: past `most` waiting, the items
    give way to one that says "read what you missed from where you were"."""
    inbox: Inbox[str] = Inbox()
    for n in range(3):
        inbox.put_bounded(f"notice {n}", 3, "look in the store")
    inbox.put_bounded("notice 3", 3, "look in the store")
    inbox.put_bounded("notice 4", 3, "look in the store")
    assert [await inbox.next(within=0) for _ in range(3)] == [
        "look in the store",
        "notice 4",
        None,
    ]


async def test_nothing_within_the_deadline_is_none() -> None:
    inbox: Inbox[str] = Inbox()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await inbox.next(within=0.05) is None
    assert loop.time() - started >= 0.05
    assert await inbox.next(within=0) is None  # no time left: at once


async def test_the_end_wakes_the_waiter_and_every_later_wait_is_none_at_once() -> None:
    inbox: Inbox[str] = Inbox()
    waiting = asyncio.ensure_future(inbox.next())  # no deadline at all
    await asyncio.sleep(0)
    inbox.end()
    assert await asyncio.wait_for(waiting, 1) is None
    inbox.put_nowait("late")
    assert await asyncio.wait_for(inbox.next(), 1) is None
    assert inbox.ended


def bound_channel(ping: float) -> tuple[Channel[str], list[bytes]]:
    """A channel whose sends (its pings) are collected in the list."""
    sent: list[bytes] = []

    async def send(body: bytes) -> None:
        sent.append(body)

    channel: Channel[str] = Channel()
    channel.bind(send, ping=ping)
    return channel, sent


async def test_a_channel_pings_while_it_waits_and_not_after_the_deadline() -> None:
    channel, sent = bound_channel(ping=0.05)
    assert await channel.next(within=0.28) is None
    assert 2 <= len(sent) <= 5  # one each 0.05 s of silence at most, none at the deadline
    assert all(body.startswith(b": ping") and body.endswith(b"\n\n") for body in sent)
    sent.clear()
    assert await channel.next(within=0.05) is None  # the ping's time is the deadline's
    assert sent == []


async def test_a_channel_hands_over_an_item_without_a_ping() -> None:
    channel, sent = bound_channel(ping=5)
    channel.put_nowait("notice")
    assert await channel.next() == "notice"
    assert sent == []
