"""How an event stream ends: a client reading nothing is dropped; a generator's errors are not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from sse_starlette import ServerSentEvent
from starlette.types import Message

from api.eventstream import Channel, EventStream
from api.limits import Holder, StreamLimits

HOLDER = Holder("session", "127.0.0.1")
SCOPE: dict[str, Any] = {"type": "http", "method": "GET"}


def stream(events: Any, limits: StreamLimits, *, send_timeout: float = 5.0) -> EventStream:
    return EventStream(
        events,
        limits=limits,
        holder=HOLDER,
        ping=0,
        send_timeout=send_timeout,
        headers={},
        retry_ms=1000,
    )


async def never_disconnects() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_a_client_that_reads_nothing_is_dropped_after_the_send_timeout() -> None:
    async def events(channel: Channel[Any]) -> AsyncGenerator[ServerSentEvent, None]:
        while True:
            yield ServerSentEvent("tick")

    sent: list[Message] = []

    async def stuck_after_headers(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # the client's buffers are full: never returns

    limits = StreamLimits(10, 10, 10)
    response = stream(events, limits, send_timeout=0.05)
    await asyncio.wait_for(response(SCOPE, never_disconnects, stuck_after_headers), 5)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert limits.open == 0  # its slot is given back


async def test_a_generators_own_timeout_is_an_error_not_a_slow_client() -> None:
    async def events(channel: Channel[Any]) -> AsyncGenerator[ServerSentEvent, None]:
        yield ServerSentEvent("first")
        raise TimeoutError("a bug of the stream's own")

    sent: list[Message] = []

    async def reads_everything(message: Message) -> None:
        sent.append(message)

    limits = StreamLimits(10, 10, 10)
    response = stream(events, limits)
    with pytest.raises(TimeoutError, match="a bug of the stream's own"):
        await response(SCOPE, never_disconnects, reads_everything)
    assert b"first" in sent[1]["body"]
    assert limits.open == 0
