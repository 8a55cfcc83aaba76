"""The event streams: one command's outcome, and a browser session's notices.

Both register with the relay before they look in the store (subscribe, then
check), so a notice stored at any moment is either found or relayed.

The session stream's event ids are NOTICES stream sequences. They only grow,
so "resume after id N" is "this session's notices with a sequence above N",
read from the store, then the live ones above the last one sent: no loss, no
duplicate. Without a cursor the stream starts at the present, and its first
event (`connected`) carries the current sequence as its id, so even a client
that has seen no notice yet resumes from the right place. A cursor the store
cannot honour (not a number, from the future, or older than what is kept)
gets `event: reset`: the client should re-read the status of what it awaits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from api.eventstream import Channel, EventStream
from api.inbox import Inbox
from api.limits import holder_of
from api.problems import invalid_query, not_found
from api.relay import Item, Resync, Unavailable
from api.services import Services, services, session_id
from api.sse import (
    connected_event,
    hello_event,
    notice_event,
    reset_event,
    timeout_event,
    unavailable_event,
)
from api.urls import command_id_param, status_url
from contracts.lookups import (
    StoredNotice,
    find_command,
    find_notice,
    notice_bounds,
    session_notices_after,
)

HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
log = logging.getLogger(__name__)


def event_source(
    svc: Services,
    request: Request,
    stream: Callable[[Channel[Any]], AsyncGenerator[ServerSentEvent, None]],
    on_close: Callable[[], Awaitable[None]] | None = None,
    channel: Channel[Any] | None = None,
) -> Response:
    """An SSE response (`api.eventstream`) holding a slot of the stream limits.

    The generator is handed the stream's channel: what it waits for comes
    through it, and it ends (`channel.ended`) when the client leaves or the
    server stops; the generator then returns and the response ends cleanly.
    A NATS failure midway ends the stream with `event: unavailable` and a
    retry hint.
    """
    return EventStream(
        stream,
        limits=svc.limits,
        holder=holder_of(request),
        on_close=on_close,
        ping=svc.settings.sse_ping,
        send_timeout=svc.settings.sse_send_timeout,
        headers=HEADERS,
        retry_ms=svc.settings.sse_retry_ms,
        channel=channel,
    )


# ---- one command -----------------------------------------------------------


async def command_events(request: Request) -> Response:
    """GET /api/commands/{id}/events?timeout=S"""
    svc = services(request)
    command_id = command_id_param(request)
    wait_s = _timeout_param(request, svc.settings.notice_timeout, svc.settings.max_notice_timeout)
    if (
        await find_command(svc.js, command_id) is None
        and await find_notice(svc.js, command_id) is None
    ):
        raise not_found("The command")
    return event_source(
        svc, request, lambda channel: _command_stream(svc, command_id, wait_s, channel)
    )


async def _command_stream(
    svc: Services, command_id: str, wait_s: float, channel: Channel[Item]
) -> AsyncGenerator[ServerSentEvent, None]:
    svc.metrics.streams_opened.labels("command").inc()
    yield hello_event(svc.settings.sse_retry_ms)
    async with svc.relay.command(command_id, channel):
        stored = await wait_for_notice(svc, command_id, channel, wait_s)
    if channel.ended:  # the client left, or the server is stopping
        return
    if stored is None:
        yield timeout_event(command_id, status_url(command_id))
    else:
        yield notice_event(stored, svc.cursors.encode(stored.seq, command_id))


async def wait_for_notice(
    svc: Services, command_id: str, inbox: Inbox[Item], wait_s: float
) -> StoredNotice | None:
    """The command's notice, or None if none is stored within `wait_s` seconds (or
    the inbox is ended first).

    `inbox` must be registered with the relay for `command_id` already: this
    looks in the store first, then waits for the relay.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    stored = await find_notice(svc.js, command_id)
    while stored is None:
        item = await inbox.next(within=deadline - loop.time())
        if item is None:
            return None
        if isinstance(item, Unavailable):
            continue  # a command's waiter waits on: its notice comes once NATS is back
        stored = await find_notice(svc.js, command_id) if isinstance(item, Resync) else item
    return stored


def _timeout_param(request: Request, default: float, limit: float) -> float:
    raw = request.query_params.get("timeout")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= limit:
        raise invalid_query("timeout", f"a number of seconds in (0, {limit:g}]")
    return value


# ---- a browser session -----------------------------------------------------


async def session_events(request: Request) -> Response:
    """GET /api/events: every notice of this session's commands."""
    svc = services(request)
    cursor = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    session = session_id(request)
    return event_source(
        svc, request, lambda channel: _session_stream(svc, session, cursor, channel)
    )


async def _session_stream(
    svc: Services, session: str, cursor: str | None, channel: Channel[Item]
) -> AsyncGenerator[ServerSentEvent, None]:
    svc.metrics.streams_opened.labels("session").inc()
    yield hello_event(svc.settings.sse_retry_ms)
    async with svc.relay.session(session, channel):

        def event_id(position: int) -> str:
            return svc.cursors.encode(position, session)

        bounds = await notice_bounds(svc.js)
        position = bounds.last_seq
        resume = None if cursor is None else svc.cursors.decode(cursor, session)
        catch_up = False  # read the stored notices after `position` before the next live one
        if cursor is None:
            yield connected_event(event_id(position))
        elif (reason := _cursor_problem(resume, bounds.first_seq, bounds.last_seq)) is not None:
            yield reset_event(event_id(position), reason)
        else:
            position, catch_up = resume or 0, True
        while True:
            if catch_up and not channel.ended:  # no reads for a client that has left
                async with aclosing(session_notices_after(svc.js, session, position)) as found:
                    async for stored in found:
                        yield notice_event(stored, event_id(stored.seq))
                        position = stored.seq
                        if channel.ended:
                            break
            catch_up = False
            if (item := await channel.next()) is None:
                return
            if isinstance(item, Unavailable):
                # Say so and end: the client reconnects after the retry hint, and is
                # answered "unavailable" at once until NATS is back (api.outage).
                yield unavailable_event(svc.settings.sse_retry_ms)
                return
            if isinstance(item, Resync):
                catch_up = True
            elif item.seq > position:
                yield notice_event(item, event_id(item.seq))
                position = item.seq


def _cursor_problem(seq: int | None, first_seq: int, last_seq: int) -> str | None:
    """Why a Last-Event-ID (decoded: None if it is not one) cannot be resumed from, or None."""
    if seq is None or seq > last_seq:
        return "unknown event id"
    if seq < first_seq - 1:
        return "event id older than the notices still kept"
    return None
