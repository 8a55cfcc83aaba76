"""A lean Server-Sent Events response: the request's own task, and one watching the client.

sse-starlette's EventSourceResponse runs every stream as a task group of four
(the body, the pings, a disconnect listener, a shutdown listener): about
50 KB a stream, which 10,000 waiting clients multiply. Here a stream is its
generator, run in the request's task, and one task awaiting the client's
disconnect; everything it waits for arrives through its `Channel` (an
`api.inbox.Inbox`): items from the relay, the end when the client leaves or
the server stops. Keep-alive pings are sent by the stream's own wait when it
has been idle for `ping` seconds, so no task sleeps beside it.

If NATS fails under a stream midway, `event: unavailable` with a `retry:`
hint of `retry_ms` is its last event, so the client is told and reconnects.

The stream holds a slot of the stream limits from the response's creation
until the ASGI call ends, however it ends (a client gone before the first
byte included); `on_close` is awaited then too.

Server shutdown: one task per process watches for uvicorn's exit (the flag
sse-starlette's patched `handle_exit` sets, or uvicorn's own) and ends every
open channel, so each generator returns and its response ends with a proper
last chunk instead of holding the shutdown up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import nats.errors
from sse_starlette import ServerSentEvent
from sse_starlette.sse import AppStatus
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.inbox import Inbox
from api.limits import Holder, StreamLimits
from api.sse import ping_comment, unavailable_event

log = logging.getLogger(__name__)
T = TypeVar("T")
EXIT_POLL = 0.5


class Channel(Inbox[T]):
    """A stream's inbox: `next` sends a ping comment each `ping` seconds it waits.

    Made by the response, or beforehand by an endpoint that must collect items
    before the stream starts (`api.live`); the response binds it to its client.
    """

    __slots__ = ("_ping", "_send")

    def __init__(self) -> None:
        super().__init__()
        self._send: Callable[[bytes], Awaitable[None]] | None = None
        self._ping = 0.0

    def bind(self, send: Callable[[bytes], Awaitable[None]], ping: float) -> None:
        self._send, self._ping = send, ping

    async def next(self, within: float | None = None) -> T | None:
        if self._ping <= 0:
            return await super().next(within)
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while True:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return None
            item = await super().next(self._ping if left is None else min(self._ping, left))
            if item is not None or self.ended:
                return item
            if self._send is not None and (deadline is None or loop.time() < deadline):
                await self._send(ping_comment())


class _SendTimeout(Exception):
    """A chunk waited send_timeout to be sent (told apart from a generator's own timeouts)."""


class EventStream(Response):
    """`stream(channel)` yields the events; the response sends them as they come."""

    media_type = "text/event-stream"

    def __init__(
        self,
        stream: Callable[[Channel[Any]], AsyncGenerator[ServerSentEvent, None]],
        *,
        limits: StreamLimits,
        holder: Holder,
        ping: float,
        send_timeout: float,
        headers: dict[str, str],
        on_close: Callable[[], Awaitable[None]] | None = None,
        retry_ms: int,
        channel: Channel[Any] | None = None,
    ) -> None:
        limits.acquire(holder)
        self._limits = limits
        self._holder = holder
        self._stream = stream
        self._ping_every = ping
        self._send_timeout = send_timeout
        self._on_close = on_close
        self._channel = channel
        self._retry_ms = retry_ms
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._respond(scope, receive, send)
        finally:
            self._limits.release(self._holder)
            if self._on_close is not None:
                await self._on_close()

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if scope["method"] == "HEAD":  # headers only: a stream would never end (sse-starlette #218)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        async def chunk(body: bytes) -> None:
            try:
                async with asyncio.timeout(self._send_timeout):
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            except TimeoutError:
                raise _SendTimeout from None

        channel: Channel[Any] = self._channel or Channel()
        channel.bind(chunk, self._ping_every)
        watcher = asyncio.ensure_future(_end_on_disconnect(receive, channel))
        _OPEN.add(channel)
        _watch_exit()
        events = self._stream(channel)
        try:
            try:
                async for event in events:
                    await chunk(event.encode())
            except nats.errors.Error as exc:
                # NATS failed under the stream (the connection lost, a cluster electing
                # a leader): say so, rather than cut the body off; the client comes back
                # after the retry hint.
                log.warning("event stream ended: NATS %s", type(exc).__name__)
                await chunk(unavailable_event(self._retry_ms).encode())
        except _SendTimeout:
            # The client has read nothing for send_timeout seconds (its buffers are
            # full): it is dropped; uvicorn closes the connection.
            log.info("event stream dropped: the client read nothing for %ss", self._send_timeout)
            return
        finally:
            _OPEN.discard(channel)
            watcher.cancel()
            await events.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _end_on_disconnect(receive: Receive, channel: Channel[Any]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    channel.end()


# ---- server shutdown ---------------------------------------------------------

_OPEN: set[Inbox[Any]] = set()
_watcher: asyncio.Task[None] | None = None


@contextlib.contextmanager
def ended_on_exit(inbox: Inbox[Any]) -> Iterator[None]:
    """While in it, `inbox` is ended when the server stops (a `Prefer: wait`'s): its
    waiter answers at once, rather than being cancelled by uvicorn 5 s later (a 500,
    for a command that was accepted)."""
    _OPEN.add(inbox)
    _watch_exit()
    try:
        yield
    finally:
        _OPEN.discard(inbox)


def _exiting() -> bool:
    """uvicorn is stopping: the flag sse-starlette's patched handle_exit sets, or the
    server's own (found through its signal handler when the patch did not take)."""
    if AppStatus.should_exit:
        return True
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return bool(getattr(server, "should_exit", False))


def _watch_exit() -> None:
    global _watcher
    if _watcher is None or _watcher.done() or _watcher.get_loop() is not asyncio.get_running_loop():
        _watcher = asyncio.ensure_future(_end_all_on_exit())


async def _end_all_on_exit() -> None:
    while _OPEN:
        if _exiting():
            for channel in list(_OPEN):
                channel.end()
            return
        await asyncio.sleep(EXIT_POLL)
