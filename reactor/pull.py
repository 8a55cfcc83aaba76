"""Pulling a consumer's messages into a buffer, one request ahead, with no future per message.

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
"""

from __future__ import annotations

import asyncio
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
        headers = msg.headers or {}
        status = headers.get("Status") if not msg.data else None
        if status is None:
            self._buffer.append(msg)
            self._outstanding -= 1
            self._arrived.set()
            if self._outstanding > 0:
                return
        elif status == "100":
            return  # a heartbeat: the request is alive
        elif status == "503" or (status == "409" and "Deleted" in headers.get(DESCRIPTION, "")):
            self._failure = f"pull: {status} {headers.get(DESCRIPTION, '')}".strip()
            self._arrived.set()
            return
        self._outstanding = 0  # the request is over (404, 408, 409, or the batch is in)
        await self._ask()
