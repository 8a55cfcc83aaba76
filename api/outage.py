"""Fail fast while NATS is unreachable: every route that needs it answers at once.

Without this a read, `/readyz` or a keyed POST would wait out NATS's request
timeout (5 s) before its 503. While the connection is down (nats-py is
reconnecting), a request to `/api/...` or `/readyz` gets `503` problem+json
with `Retry-After` straight away; the session stream (`/api/events`) gets a
stream that says so in-band (`event: unavailable`) with a `retry:` hint and
ends, so an EventSource reconnects by itself once NATS is back. `/healthz`
(the process is alive), the pages, `/openapi.json` and `/docs` need no NATS.
"""

from __future__ import annotations

from typing import Final

from starlette.types import Receive, Scope, Send

from api.problems import UNAVAILABLE, problem_response
from api.services import Services
from api.sse import unavailable_event

RETRY_AFTER_S: Final = 2


def needs_nats(path: str) -> bool:
    return path.startswith("/api/") or path == "/readyz"


def unavailable(scope: Scope) -> Services | None:
    """The services, if NATS is unreachable and this request needs it; else None."""
    svc = scope["state"].get("services")
    if isinstance(svc, Services) and not svc.nc.is_connected and needs_nats(scope["path"]):
        return svc
    return None


async def refuse(svc: Services, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer at once: 503 problem+json, or for an event stream an in-band `unavailable`."""
    svc.metrics.refused.labels("nats-unavailable").inc()
    path = scope["path"]
    if path == "/api/events" or (path.startswith("/api/commands/") and path.endswith("/events")):
        # An event stream: a 503 would end a browser's EventSource for good.
        await _unavailable_stream(send, svc.settings.sse_retry_ms)
        return
    response = problem_response(UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_S)})
    await response(scope, receive, send)


async def _unavailable_stream(send: Send, retry_ms: int) -> None:
    """An event stream that says NATS is away and when to come back, then ends."""
    body = unavailable_event(retry_ms).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
