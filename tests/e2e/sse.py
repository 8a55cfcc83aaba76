"""Reading a command's event stream the way curl or EventSource would."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse

from api.cursors import Cursors
from api.session import DEV_SECRET

JSON = {"content-type": "application/json"}


async def post_location(
    client: httpx.AsyncClient, name: str, category: str = "City", **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/locations",
        json={"name": name, "category": category, "description": "made by a test"},
        headers={**JSON, **headers},
    )


async def command_events(
    client: httpx.AsyncClient, command_id: str, wait_s: float | None = None
) -> list[ServerSentEvent]:
    """Every event of the command's stream, until the server ends it.

    Like a browser's EventSource, a block with no data (the opening `retry:`
    hint) dispatches no event; httpx-sse would report it as an empty message.
    """
    url = f"/api/commands/{command_id}/events"
    params = {"timeout": str(wait_s)} if wait_s is not None else None
    async with aconnect_sse(client, "GET", url, params=params) as source:
        source.response.raise_for_status()
        return [event async for event in source.aiter_sse() if event.data]


class SessionStream:
    """GET /api/events in the background: its events, in order, as they come.

    `async with SessionStream(client) as stream:` opens the stream and waits
    for its first event (`connected` or `reset`, or a notice when resuming);
    `await stream.next()` returns the following ones.
    """

    def __init__(self, client: httpx.AsyncClient, last_event_id: str | None = None) -> None:
        self.client = client
        self.last_event_id = last_event_id
        self.events: asyncio.Queue[ServerSentEvent] = asyncio.Queue()
        self.status_code: int | None = None
        self._opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SessionStream:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._opened.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        try:
            async with aconnect_sse(self.client, "GET", "/api/events", headers=headers) as source:
                self.status_code = source.response.status_code
                self._opened.set()
                if self.status_code != 200:
                    return
                async for event in source.aiter_sse():
                    if event.data:
                        await self.events.put(event)
        finally:
            self._opened.set()

    async def next(self, within: float = 10.0) -> ServerSentEvent:
        return await asyncio.wait_for(self.events.get(), within)

    async def notices(self, count: int, within: float = 20.0) -> list[ServerSentEvent]:
        """The next `count` events, which must all be notices."""
        got = [await self.next(within) for _ in range(count)]
        assert all(e.event in ("succeeded", "failed") for e in got), [e.event for e in got]
        return got


def command_id_of(event: ServerSentEvent) -> str:
    value: str = json.loads(event.data)["command_id"]
    return value


def position_of(client: httpx.AsyncClient, event: ServerSentEvent) -> int:
    """The NOTICES position behind a session stream event's opaque id (the tests' API runs
    with the development secret; the session is the client's)."""
    session = client.cookies["sid"].split(".")[0]
    position = Cursors(DEV_SECRET).decode(event.id, session)
    assert position is not None, event.id
    return position
