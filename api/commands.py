"""Commands in, their status and their event stream out (DESIGN §4).

POST publishes exactly one message (JetStream, `Nats-Msg-Id` = command id) and
answers 202 only once JetStream has acknowledged it. Nothing else is written
on the request path, and nothing at all when the request is refused.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats.errors
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.problems import HTTPProblem, not_found
from api.relay import NoticeRelay, Resync
from api.services import Services, services, session_id
from api.sse import SEP, hello_event, notice_event, timeout_event
from contracts.commands import COLLECTIONS, Command, command_type, encoder
from contracts.lookups import StoredNotice, find_command, find_notice
from contracts.notices import FieldError
from contracts.topology import command_subject
from contracts.validation import InvalidPayload, MalformedBody, decode_payload

COMMAND_ID = re.compile(r"^[0-9a-f]{32}$")
REQUEST_ID = re.compile(r"^[\w.:-]{1,128}$")
MAX_SIMULATED_DELAY = 60.0


def status_url(command_id: str) -> str:
    return f"/api/commands/{command_id}"


def events_url(command_id: str) -> str:
    return f"/api/commands/{command_id}/events"


async def submit(request: Request) -> Response:
    svc = services(request)
    collection = request.path_params["collection"]
    payload_type = COLLECTIONS.get(collection)
    if payload_type is None:
        raise not_found(f"The collection {collection!r}")
    _require_json(request)
    body = await _read_body(request, svc.settings.max_body_bytes)
    try:
        payload = decode_payload(payload_type, body)
    except MalformedBody as exc:
        raise HTTPProblem(400, "Malformed JSON", str(exc)) from None
    except InvalidPayload as exc:
        raise HTTPProblem(
            422,
            "Invalid command",
            f"The {collection} command is not valid: {exc}",
            slug="validation",
            errors=exc.errors,
        ) from None
    command_id = uuid.uuid4().hex
    command = Command(
        command_id=command_id,
        submitted_at=datetime.now(UTC),
        session_id=session_id(request),
        correlation_id=_correlation_id(request, command_id),
        payload=payload,
        simulate_delay_s=_simulated_delay(request),
    )
    await _publish(svc, command)
    svc.metrics.inc("commands_accepted_total", f'type="{command.type}"')
    return JSONResponse(
        {
            "command_id": command_id,
            "status": "pending",
            "status_url": status_url(command_id),
            "events_url": events_url(command_id),
        },
        status_code=202,
        headers={"Location": status_url(command_id)},
    )


async def status(request: Request) -> Response:
    svc = services(request)
    command_id = _command_id(request)
    stored = await find_notice(svc.js, command_id)
    if stored is not None:
        return Response(encoder.encode(stored.notice), media_type="application/json")
    command = await find_command(svc.js, command_id)
    if command is None:
        raise not_found("The command")
    return JSONResponse(
        {
            "command_id": command_id,
            "type": command_type(command.payload),
            "status": "pending",
            "submitted_at": command.submitted_at.isoformat().replace("+00:00", "Z"),
            "completed_at": None,
            "resource": None,
            "resource_url": None,
            "actions": [],
            "error": None,
        }
    )


async def events(request: Request) -> Response:
    svc = services(request)
    command_id = _command_id(request)
    timeout = _timeout(request, svc.settings.notice_timeout, svc.settings.max_notice_timeout)
    if (
        await find_command(svc.js, command_id) is None
        and await find_notice(svc.js, command_id) is None
    ):
        raise not_found("The command")
    return EventSourceResponse(
        _command_stream(svc, command_id, timeout),
        ping=svc.settings.sse_ping,
        send_timeout=30,
        sep=SEP,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _command_stream(
    svc: Services, command_id: str, wait_s: float
) -> AsyncIterator[ServerSentEvent]:
    svc.metrics.inc("sse_streams_opened_total", 'stream="command"')
    yield hello_event(svc.settings.sse_retry_ms)
    stored = await wait_for_notice(svc, svc.relay, command_id, wait_s)
    if stored is None:
        yield timeout_event(command_id, status_url(command_id))
    else:
        yield notice_event(stored)


async def wait_for_notice(
    svc: Services, relay: NoticeRelay, command_id: str, wait_s: float
) -> StoredNotice | None:
    """The command's notice, or None if none is stored within `wait_s` seconds.

    Registers with the relay first, then looks in the store: a notice stored
    after the look-up is relayed to the registered queue, so none is missed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    async with relay.command(command_id) as queue:
        stored = await find_notice(svc.js, command_id)
        while stored is None:
            try:
                item = await asyncio.wait_for(queue.get(), deadline - loop.time())
            except TimeoutError:
                return None
            stored = await find_notice(svc.js, command_id) if isinstance(item, Resync) else item
        return stored


def _command_id(request: Request) -> str:
    command_id: str = request.path_params["command_id"]
    if not COMMAND_ID.match(command_id):
        raise not_found("The command")
    return command_id


def _timeout(request: Request, default: float, limit: float) -> float:
    raw = request.query_params.get("timeout")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= limit:
        raise HTTPProblem(
            422,
            "Invalid parameter",
            f"timeout must be a number of seconds in (0, {limit:g}]",
            slug="validation",
            errors=[_query_error("timeout", f"must be in (0, {limit:g}]")],
        )
    return value


def _query_error(name: str, msg: str) -> FieldError:
    return FieldError(loc=f"query.{name}", msg=msg)


def _require_json(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPProblem(
            415,
            "Unsupported media type",
            f"Send the command as application/json, not {media_type or 'no content type'}.",
        )


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = HTTPProblem(413, "Body too large", f"The body is over the limit of {limit} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _correlation_id(request: Request, default: str) -> str:
    given = request.headers.get("x-request-id", "")
    return given if REQUEST_ID.match(given) else default


def _simulated_delay(request: Request) -> float:
    raw = request.headers.get("x-simulate-delay")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_SIMULATED_DELAY:
        raise HTTPProblem(
            422,
            "Invalid header",
            f"X-Simulate-Delay must be seconds in [0, {MAX_SIMULATED_DELAY:g}]",
            slug="validation",
        )
    return value


async def _publish(svc: Services, command: Command) -> None:
    """Publish and wait for the JetStream ack, or answer 503."""
    unavailable = HTTPProblem(
        503,
        "Service unavailable",
        "The command store did not acknowledge the command. Retry shortly.",
        headers={"Retry-After": "2"},
    )
    if not svc.nc.is_connected:
        raise unavailable
    try:
        await svc.js.publish(
            command_subject(command.type, command.command_id),
            encoder.encode(command),
            timeout=svc.settings.publish_timeout,
            headers={"Nats-Msg-Id": command.command_id},
        )
    except (nats.errors.Error, TimeoutError) as exc:
        raise unavailable from exc
