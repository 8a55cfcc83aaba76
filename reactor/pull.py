"""Pulling a consumer's messages into a buffer with no future per message.

nats-py's `fetch()` awaits each message of a batch with its own timeout (a
task per message on Python 3.11): measured here at about 50 µs of CPU per
message, most of a reader's cost when events are small and many. This asks
the server for up to `batch` messages at a time (`$JS.API.CONSUMER.MSG.NEXT`,
an `expires` so the request ends by itself) and collects them with a
subscription callback into a list; the caller takes what has arrived. About
20 µs a message.

- One request is outstanding at a time, made again when it ends (the batch
  delivered, or a 404/408/409 status) and there is room in the buffer: the
  buffer holds at most twice `batch` messages, and a request brings at most
  MAX_BYTES (a backlog of large events does not fill the memory; it is
  above any one message's size, or a request would never bring one).
- Statuses: 404 (no messages) and 408 (expired) end a request; 409 ends it
  too, unless it says the consumer is gone, which is an error, as is 503
  (no responders: no such consumer); 100 is a heartbeat.
- A request lost on the way (a reconnect drops the server's pending pulls)
  would leave the reader waiting for ever: one that has had no answer
  `expires` + LOST_AFTER seconds after it was made is an error too. The
  caller makes its consumer again from its position.

`PullStream` reads an ephemeral consumer (the event readers: one request
ahead, the buffer its own). `BoundedPull` serves a durable consumer to a
caller that must hold at most so many messages (the reactor's commands: the
caller says how much room it has, and stopping hands nothing to a request
that nobody will serve).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

LOST_AFTER: Final = 3.0
MAX_BYTES: Final = 8 * 1024 * 1024  # above the streams' 2 MiB message limit
DESCRIPTION: Final = "Description"


class PullFailed(NatsError):
    """The consumer is gone or stopped answering: make it again."""


class PullStream:
    def __init__(
        self, nc: Client, stream: str, consumer: str, batch: int, expires: float = 5.0
    ) -> None:
        self._nc = nc
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._batch = batch
        self._expires = expires
        self._buffer: list[Msg] = []
        self._arrived = asyncio.Event()
        self._outstanding = 0  # messages the open request may still bring
        self._asked_at = 0.0
        self._failure: str | None = None
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        await self._ask()

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()

    @property
    def buffered(self) -> int:
        """Messages arrived and not taken yet."""
        return len(self._buffer)

    async def take(self, most: int, wait: float) -> list[Msg]:
        """Up to `most` messages, waiting up to `wait` seconds for the first."""
        if not self._buffer:
            self._check()
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), wait)
            except TimeoutError:
                self._check()
                return []
        taken, self._buffer = self._buffer[:most], self._buffer[most:]
        if self._outstanding == 0:
            await self._ask()
        return taken

    def _check(self) -> None:
        if self._failure is not None:
            raise PullFailed(self._failure)
        loop = asyncio.get_running_loop()
        # A request ends by itself within `expires` (408 if the batch is not full).
        if self._outstanding > 0 and loop.time() - self._asked_at > self._expires + LOST_AFTER:
            raise PullFailed("a pull went unanswered (a reconnect, or the server restarted)")

    async def _ask(self) -> None:
        room = 2 * self._batch - len(self._buffer)
        if self._sub is None or self._failure is not None or room < self._batch:
            return
        self._outstanding = room
        self._asked_at = asyncio.get_running_loop().time()
        request = {"batch": room, "max_bytes": MAX_BYTES, "expires": int(self._expires * 1e9)}
        await self._nc.publish(self._subject, json.dumps(request).encode(), reply=self._inbox)

    async def _on_msg(self, msg: Msg) -> None:
        status, description = _status(msg)
        if status is None:
            self._buffer.append(msg)
            self._outstanding -= 1
            self._arrived.set()
            if self._outstanding > 0:
                return
        elif status == "100":
            return  # a heartbeat: the request is alive
        elif status == "503" or (status == "409" and "Deleted" in description):
            self._failure = _failure(status, description)  # the consumer is gone
            self._arrived.set()
            return
        self._outstanding = 0  # the request is over (404, 408, 409, or the batch is in)
        await self._ask()


def _status(msg: Msg) -> tuple[str | None, str]:
    """A pull's reply: (None, "") for a message, else its status and description."""
    if msg.data:
        return None, ""
    headers = msg.headers or {}
    return headers.get("Status"), headers.get(DESCRIPTION, "")


def _failure(status: str, description: str) -> str:
    return f"pull: {status} {description}".strip()


class _Request:
    __slots__ = ("left", "suspect", "until")

    def __init__(self, left: int, until: float) -> None:
        self.left = left  # messages it may still bring
        self.until = until  # by then the server has ended it, or never had it
        self.suspect = False  # made before a reconnect: perhaps gone, perhaps not


def _ends(status: str, description: str) -> bool:
    """Whether a status ends a request as asked. Any other means something is wrong
    (the consumer gone, one of its limits, a bad request, a push consumer): asked
    again at once, the answer would be the same."""
    return status in ("404", "408") or (
        status == "409" and description in ("Leadership Change", "Batch Completed", SHUTDOWN)
    )


# What a server going down sends to every pull request open on it (of an R1
# consumer), 50 ms before it goes: the request is over, and one made now would
# be lost with the server. The next is asked once reconnected (to it or
# another; if the consumer is gone by then, that one fails), or after
# `expires` + LOST_AFTER if no reconnect is seen.
SHUTDOWN: Final = "Server Shutdown"


RECONNECT_MARGIN: Final = 0.5


class BoundedPull:
    """A durable consumer's messages for a caller that holds at most so many at a time.

    - The caller `ask`s with the room it has (its limit, less what it is
      working on and `held` here); a request is made for that room (at most
      `most`) if none is open and the connection is up. So what the caller
      works on, what waits here and what an open request may still bring
      never add up to more than its limit. A request ends when its last message is in, or
      with a 404, 408 or 409 (leadership change, server shutdown: then no
      request is made until a reconnect); another status is an error
      (PullFailed), as is the consumer being gone.
    - Each request has a reply subject of its own, so a status ends the
      request it answers and no other.
    - `wake` is set whenever anything arrives (the caller waits on it, and
      may set it too).
    - `close` stops asking and waits for the open request to end before
      unsubscribing: a message the server sends to a request whose
      subscription is gone would be nobody's until the consumer's ack wait
      ran out. What arrived and was not taken is returned for the caller to
      hand back.
    - A request is over for certain `expires` after the server has it: it is
      counted until then (`expires` + LOST_AFTER after it was made), then
      taken as lost. After a reconnect, a request made before it may reach
      the server only now (the client keeps what is published while it is
      disconnected) or still be there (a short break): it is counted until
      `expires` after the reconnect is seen, but does not hold up a new
      request for the room left beside it (with `most` at half the caller's
      limit, there is room for one at once). A message is charged to the
      newest request: after a server's restart the old one is gone.
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        wake: asyncio.Event,
        *,
        most: int,
        expires: float = 1.0,
    ) -> None:
        self._nc = nc
        self._most = most
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._expires = expires
        self._wake = wake
        self._inbox = nc.new_inbox()
        self._requests: dict[str, _Request] = {}
        self._made = 0
        self._reconnects = nc.stats["reconnects"]
        # (reconnects, until): its server is going down; ask again after a reconnect.
        self._going: tuple[int, float] | None = None
        self._buffer: list[Msg] = []
        self._failure: str | None = None
        self._asking = True
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_msg)

    @property
    def buffered(self) -> int:
        """Messages arrived and not taken yet."""
        return len(self._buffer)

    @property
    def held(self) -> int:
        """Messages arrived and not taken, and those the open request may still bring."""
        return len(self._buffer) + sum(r.left for r in self._requests.values())

    def take(self) -> list[Msg]:
        """Every message arrived and not taken yet (raises PullFailed if the pull failed)."""
        if self._failure is not None:
            raise PullFailed(self._failure)
        taken, self._buffer = self._buffer, []
        return taken

    async def ask(self, room: int) -> None:
        """Ask for up to `room` messages, unless a request is open or the connection is down."""
        self._settle()
        trusted = any(not r.suspect for r in self._requests.values())
        if trusted or room <= 0 or not self._asking or self._sub is None:
            return
        if not self._nc.is_connected:
            return  # asked once it is back (the caller asks again within a second)
        if self._server_going():
            return
        self._made += 1
        token = str(self._made)
        until = asyncio.get_running_loop().time() + self._expires + LOST_AFTER
        batch = min(room, self._most)
        self._requests[token] = _Request(batch, until)
        request = {"batch": batch, "expires": int(self._expires * 1e9)}
        await self._nc.publish(
            self._subject, json.dumps(request).encode(), reply=f"{self._inbox}.{token}"
        )

    async def close(self, wait: bool = True) -> list[Msg]:
        """Stop asking; unsubscribe once no request can still bring anything (unless not
        `wait`: the pull failed, or the connection is closed); what arrived and was not
        taken."""
        self._asking = False
        loop = asyncio.get_running_loop()
        while wait and self._failure is None and not self._nc.is_closed and self._settle():
            self._wake.clear()
            until = max(r.until for r in self._requests.values())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(until - loop.time(), 0.0)):
                    await self._wake.wait()
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        left, self._buffer = self._buffer, []
        return left

    def _server_going(self) -> bool:
        """Its server said it is shutting down, and no reconnect is seen since."""
        if self._going is None:
            return False
        reconnects, until = self._going
        if self._nc.stats["reconnects"] == reconnects and asyncio.get_running_loop().time() < until:
            return True
        self._going = None
        return False

    def _settle(self) -> bool:
        """Whether a request may still bring messages (those surely over are dropped)."""
        if not self._requests:
            return False
        now = asyncio.get_running_loop().time()
        reconnects = self._nc.stats["reconnects"]
        if reconnects != self._reconnects:
            self._reconnects = reconnects
            for request in self._requests.values():
                request.suspect = True
                request.until = max(request.until, now + self._expires + RECONNECT_MARGIN)
        for token, request in list(self._requests.items()):
            if now > request.until:
                del self._requests[token]
        return bool(self._requests)

    async def _on_msg(self, msg: Msg) -> None:
        status, description = _status(msg)
        if status is None:
            # A message comes with its stream subject, not the request's: it is
            # charged to the newest request (one taken as lost may still bring
            # one, and it is kept: it is a delivery like any other).
            self._buffer.append(msg)
            if self._requests:
                token = next(reversed(self._requests))
                request = self._requests[token]
                request.left -= 1
                if request.left <= 0:
                    del self._requests[token]
        elif status == "100":
            return  # a heartbeat
        elif _ends(status, description):  # the request it answers (its reply subject)
            self._requests.pop(msg.subject.rsplit(".", 1)[-1], None)
            if description == SHUTDOWN:
                until = asyncio.get_running_loop().time() + self._expires + LOST_AFTER
                self._going = (self._nc.stats["reconnects"], until)
        else:
            self._failure = _failure(status, description)
        self._wake.set()
