"""Small helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgspec
from nats.js import JetStreamContext

from contracts.commands import Command, encoder, new_aggregate_id
from contracts.events import EVENT_TYPE
from contracts.notices import Notice
from contracts.topology import EVENTS_STREAM, RESERVATIONS_BUCKET, command_subject
from contracts.views import ViewBuckets, read_pointer
from domains.locations.commands import Category, CreateLocation
from reactor.eventstore import EventStore
from reactor.handling import CommandHandler
from reactor.reservations import Reservations
from tests.conftest import REGISTRY

T = TypeVar("T")


async def command_handler(js: JetStreamContext, store: EventStore | None = None) -> CommandHandler:
    """A command handler on the tests' registry, views version 1, and `store` (the
    real event store on the context's own connection if none is given)."""
    buckets = ViewBuckets(js, 1)
    reservations = Reservations(await js.key_value(RESERVATIONS_BUCKET))
    store = store or EventStore(js._nc, REGISTRY)  # nats-py keeps the connection private
    return CommandHandler(REGISTRY, store, reservations, lambda: buckets)


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float = 10.0) -> T:
    """Poll `probe` until it returns something other than None, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await probe()
        if result is not None:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


def make_notice(
    command_id: str = "c" * 32,
    status: Literal["succeeded", "failed"] = "succeeded",
    at: datetime | None = None,
    **fields: Any,
) -> Notice:
    """A notice for tests, submitted and completed at `at` (now by default)."""
    when = at or datetime.now(UTC)
    return Notice(
        command_id=command_id,
        type="CreateLocation",
        status=status,
        submitted_at=when,
        completed_at=when,
        **fields,
    )


def unique_name(prefix: str = "Place") -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def envelope(
    payload: msgspec.Struct,
    *,
    aggregate_id: str | None = None,
    session_id: str | None = None,
    delay: float = 0.0,
) -> Command:
    """A command as the API makes it: a new aggregate unless `aggregate_id` is given."""
    command_id = uuid.uuid4().hex
    submitted_at = datetime.now(UTC)
    return Command(
        command_id=command_id,
        type=type(payload).__name__,
        aggregate_id=aggregate_id or new_aggregate_id(command_id, submitted_at),
        submitted_at=submitted_at,
        session_id=session_id or uuid.uuid4().hex,
        correlation_id=command_id,
        payload=msgspec.Raw(encoder.encode(payload)),
        simulate_delay_s=delay,
    )


def make_command(
    name: str | None = None,
    session_id: str | None = None,
    category: Category = "City",
    delay: float = 0.0,
) -> Command:
    """A CreateLocation command as the API makes it."""
    payload = CreateLocation(name=name or unique_name(), category=category)
    return envelope(payload, session_id=session_id, delay=delay)


def payload_of(command: Command) -> CreateLocation:
    return msgspec.json.decode(command.payload, type=CreateLocation)


async def publish_command(js: JetStreamContext, command: Command) -> None:
    """Publish as the API does: one message, Nats-Msg-Id = command id."""
    await js.publish(
        command_subject(command.type, command.command_id),
        encoder.encode(command),
        headers={"Nats-Msg-Id": command.command_id},
    )


async def stream_messages(js: JetStreamContext, stream: str) -> int:
    info = await js.stream_info(stream)
    return info.state.messages


async def event_types(js: JetStreamContext, subject: str = "ev.>") -> list[tuple[str, str]]:
    """(subject, event type) of every event in EVENTS on `subject`, in order."""
    found: list[tuple[str, str]] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(EVENTS_STREAM, seq=seq, subject=subject, next=True)
        except Exception:  # NotFoundError: no more
            return found
        assert msg.seq is not None
        found.append((msg.subject or "", (msg.headers or {}).get(EVENT_TYPE, "")))
        seq = msg.seq + 1


async def view_state(js: JetStreamContext, view: str, key: str) -> Any:
    """A record's state in the views in use (None if absent), as plain JSON."""
    record = await ViewBuckets(js, await read_pointer(js)).record(view, key)
    return None if record is None else msgspec.json.decode(record.state)


async def category_total(js: JetStreamContext, category: str) -> int:
    """A category's count in the (async) location_stats view."""
    state = await view_state(js, "location_stats", category)
    return 0 if state is None else int(state["count"])
