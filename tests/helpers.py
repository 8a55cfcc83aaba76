"""Small helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from nats.js import JetStreamContext

from contracts.commands import Command, CreateLocation, encoder
from contracts.topology import command_subject

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
