"""Least privilege on NATS: what each role's credentials may and may not do, on the real
server with the project's nats.conf."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from contracts.topology import COMMANDS_STREAM, EVENTS_STREAM, NOTICES_STREAM
from tests.helpers import stream_messages
from tests.processes import ROLES, NatsServer


@contextlib.asynccontextmanager
async def connected(server: NatsServer, role: str) -> AsyncIterator[Client]:
    user, password, _ = ROLES[role]
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)  # permission violations arrive here as well

    client = await nats.connect(
        server.url,
        user=user,
        password=password,
        allow_reconnect=False,
        connect_timeout=2,
        error_cb=on_error,
    )
    try:
        yield client
    finally:
        await client.close()


async def refused(js: JetStreamContext, subject: str, stream: str) -> None:
    """A JetStream publish to `subject` is refused and `stream` stores nothing."""
    before = await stream_messages(js, stream)
    with pytest.raises((nats.errors.Error, TimeoutError)):
        await js.publish(subject, b"{}", timeout=0.5)
    assert await stream_messages(js, stream) == before


@pytest.fixture
async def api_js(nats_server: NatsServer, js: JetStreamContext) -> AsyncIterator[JetStreamContext]:
    async with connected(nats_server, "api") as client:
        yield client.jetstream(timeout=0.5)  # a refused request gets no answer: do not wait long


async def test_the_api_cannot_write_an_event_a_notice_or_a_view(
    api_js: JetStreamContext, js: JetStreamContext
) -> None:
    await refused(api_js, "ev.location.forged", EVENTS_STREAM)
    await refused(api_js, "notice.someone.forged", NOTICES_STREAM)
    await refused(api_js, "$KV.view_locations.forged", "KV_view_locations")
    await refused(api_js, "$KV.reservations.location-name.forged", "KV_reservations")


async def test_the_api_cannot_change_purge_or_delete_a_stream(
    api_js: JetStreamContext, js: JetStreamContext
) -> None:
    events = await stream_messages(js, EVENTS_STREAM)
    with pytest.raises((nats.errors.Error, TimeoutError)):
        await api_js.purge_stream(EVENTS_STREAM)
    with pytest.raises((nats.errors.Error, TimeoutError)):
        await api_js.delete_stream(COMMANDS_STREAM)
    config = (await js.stream_info(EVENTS_STREAM)).config
    with pytest.raises((nats.errors.Error, TimeoutError)):
        await api_js.update_stream(config)
    assert await stream_messages(js, EVENTS_STREAM) == events
    assert (await js.stream_info(COMMANDS_STREAM)).config.name == COMMANDS_STREAM


async def test_the_api_publishes_commands_and_keeps_its_own_buckets(
    api_js: JetStreamContext, js: JetStreamContext
) -> None:
    before = await stream_messages(js, COMMANDS_STREAM)
    await api_js.publish("cmd.Probe.0123", b"{}", headers={"Nats-Msg-Id": "probe-0123"})
    assert await stream_messages(js, COMMANDS_STREAM) == before + 1
    sessions = await api_js.key_value("sessions")
    await sessions.put("probe", b"{}")
    assert (await sessions.get("probe")).value == b"{}"
    views = await api_js.key_value("view_locations")  # reads are fine: the server answers
    with pytest.raises(KeyNotFoundError):  # (a refused read would time out instead)
        await views.get("no-such-record")


async def test_the_reactor_cannot_purge_or_delete_the_event_store(
    nats_server: NatsServer, js: JetStreamContext
) -> None:
    async with connected(nats_server, "reactor") as client:
        reactor_js = client.jetstream(timeout=0.5)
        with pytest.raises((nats.errors.Error, TimeoutError)):
            await reactor_js.purge_stream(EVENTS_STREAM)
        with pytest.raises((nats.errors.Error, TimeoutError)):
            await reactor_js.delete_stream(EVENTS_STREAM)
    assert (await js.stream_info(EVENTS_STREAM)).config.name == EVENTS_STREAM


async def connect_as(server: NatsServer, user: str | None, password: str | None) -> str:
    """The server's answer to a CONNECT with these credentials, in the NATS protocol itself
    (nats-py leaves the socket of a refused connection open until garbage collection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        await reader.readline()  # INFO {...}
        options = {
            "verbose": False,
            "pedantic": False,
            "protocol": 1,
            "user": user,
            "pass": password,
        }
        writer.write(b"CONNECT " + json.dumps(options).encode() + b"\r\nPING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_anonymous_and_wrong_passwords_are_refused(nats_server: NatsServer) -> None:
    user, password, _ = ROLES["api"]
    assert await connect_as(nats_server, user, password) == "PONG"
    for who, secret in ((None, None), (user, "not-the-password"), ("nobody", password)):
        assert await connect_as(nats_server, who, secret) == "-ERR 'Authorization Violation'"
