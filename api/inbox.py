"""A waiter's inbox: what the relay hands it, and one future to wake it.

Ten thousand clients may each wait for their command's notice on one API
process, so a waiter is kept small: a list, at most one pending future
and, while it waits with a deadline, one timer. Waiting for "the next item,
the deadline, or the end" needs no task: whoever puts an item or ends the
inbox resolves the future the waiter is suspended on (an `asyncio.Queue`
would need a task per wait to race its `get()` against anything else).
"""

from __future__ import annotations

import asyncio
from typing import Final, Generic, TypeVar

T = TypeVar("T")

# Items a waiter may let wait (a client reading slowly): past it, `put_bounded` puts
# one item in their place.
MAX_WAITING: Final = 256


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Inbox(Generic[T]):
    __slots__ = ("_items", "_waiter", "ended")

    def __init__(self) -> None:
        self._items: list[T] = []  # a deque is ~600 bytes even empty; this holds one or two
        self._waiter: asyncio.Future[None] | None = None
        self.ended = False  # no more items will be waited for (client gone, server stopping)

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        if self._waiter is not None:
            _wake(self._waiter)

    def put_bounded(self, item: T, most: int, instead: T) -> None:
        """Put `item`, unless `most` items already wait: then `instead` takes the place
        of them all (what tells the waiter to read what it missed from where it was):
        a client that reads slowly holds a bounded inbox, however much comes."""
        if len(self._items) >= most:
            self._items = [instead]
            if self._waiter is not None:
                _wake(self._waiter)
            return
        self.put_nowait(item)

    def end(self) -> None:
        """Stop waiting: a pending `next` returns None now, and every later one at once."""
        self.ended = True
        if self._waiter is not None:
            _wake(self._waiter)

    def empty(self) -> bool:
        return not self._items

    async def next(self, within: float | None = None) -> T | None:
        """The next item; None once `within` seconds pass or the inbox is ended first."""
        if self.ended:
            return None
        if self._items:
            return self._items.pop(0)
        if within is not None and within <= 0:
            return None
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if within is None else loop.call_later(within, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return None if self.ended or not self._items else self._items.pop(0)
