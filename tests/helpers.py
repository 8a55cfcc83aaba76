"""Small helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from contracts.commands import Command, CreateLocation, encoder
from contracts.notices import Notice
from contracts.resources import COUNTER_SHARDS, CategoryCount, category_count_decoder
from contracts.topology import LOCATION_STATS_BUCKET, command_subject

T = TypeVar("T")


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


def make_command(name: str | None = None, session_id: str | None = None) -> Command:
    command_id = uuid.uuid4().hex
    return Command(
        command_id=command_id,
        submitted_at=datetime.now(UTC),
        session_id=session_id or uuid.uuid4().hex,
        correlation_id=command_id,
        payload=CreateLocation(name=name or unique_name(), category="City"),
    )


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


async def counter_shards(js: JetStreamContext, category: str) -> list[CategoryCount]:
    """Every shard of a category's location count."""
    kv = await js.key_value(LOCATION_STATS_BUCKET)
    shards = []
    for shard in range(COUNTER_SHARDS):
        try:
            entry = await kv.get(f"{category}.{shard}")
        except KeyNotFoundError:
            continue
        shards.append(category_count_decoder.decode(entry.value or b""))
    return shards


async def category_total(js: JetStreamContext, category: str) -> tuple[int, list[str]]:
    """A category's count, and the commands still marked pending in it."""
    shards = await counter_shards(js, category)
    return sum(s.count for s in shards), [c for s in shards for c in s.pending]
