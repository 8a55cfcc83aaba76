"""Reading a command's event stream the way curl or EventSource would."""

from __future__ import annotations

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse

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
