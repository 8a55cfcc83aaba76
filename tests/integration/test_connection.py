"""contracts.connection's client through a restart of its server: the callbacks a
process hangs on a reconnect cannot break nats-py's reconnect."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable

import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from contracts.connection import NatsSettings, connect
from contracts.topology import create_view_buckets, ensure_topology
from contracts.views import ActiveViews, write_pointer
from tests.conftest import REGISTRY
from tests.helpers import eventually
from tests.processes import NATS_PASSWORD, NATS_USER, NatsServer

Callback = Callable[[], Awaitable[None]]


def connections_named(server: NatsServer, name: str) -> int:
    """How many connections the server holds from clients called `name` (its /connz)."""
    with urllib.request.urlopen(f"{server.monitor_url}/connz?limit=1024", timeout=2) as answer:
        return sum(1 for c in json.load(answer)["connections"] if c.get("name") == name)


Connected = Callable[..., Awaitable[Client]]


@pytest.fixture
async def connected(fresh_server: NatsServer) -> AsyncIterator[Connected]:
    """connect() to the fresh server with the given callbacks, answering
    "probe.echo" with what it is sent; closed at the end."""
    clients: list[Client] = []

    async def make(
        reconnected_cb: Callback | None = None, disconnected_cb: Callback | None = None
    ) -> Client:
        settings = NatsSettings(url=fresh_server.url, user=NATS_USER, password=NATS_PASSWORD)
        nc = await connect(
            settings, "probe", reconnected_cb=reconnected_cb, disconnected_cb=disconnected_cb
        )
        clients.append(nc)

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        await nc.subscribe("probe.echo", cb=echo)
        return nc

    yield make
    for client in clients:
        await client.close()


async def round_trip(nc: Client) -> bool | None:
    """A request answered by the client's own subscription: it reads and writes."""
    try:
        return (await nc.request("probe.echo", b"ping", timeout=0.5)).data == b"ping"
    except nats.errors.Error:
        return None


async def test_a_failing_reconnected_callback_leaves_one_working_connection(
    fresh_server: NatsServer,
    connected: Connected,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []

    async def times_out() -> None:  # a JetStream request during an election
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.2)
        raise nats.errors.TimeoutError

    nc = await connected(reconnected_cb=times_out)
    await asyncio.to_thread(fresh_server.restart)

    assert await eventually(lambda: round_trip(nc))

    async def failure_logged() -> bool | None:
        return True if "after a reconnect to NATS: TimeoutError" in caplog.text else None

    await eventually(failure_logged)
    # nats-py, seeing the failure, would connect again (leaving the first
    # connection and its read loop behind) and call the callback once more.
    assert len(calls) == 1
    assert nc.stats["reconnects"] == 1
    assert connections_named(fresh_server, "probe") == 1
    assert await round_trip(nc)


async def test_a_failing_disconnected_callback_does_not_stop_the_reconnect(
    fresh_server: NatsServer,
    connected: Connected,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise RuntimeError("the relay broke")

    nc = await connected(disconnected_cb=fails)
    with caplog.at_level(logging.ERROR, logger="contracts.connection"):
        await asyncio.to_thread(fresh_server.restart)
        # Let through, it would end nats-py's reconnect task before its first attempt.
        assert await eventually(lambda: round_trip(nc))
    assert "after a disconnect from NATS" in caplog.text
    assert "the relay broke" in caplog.text


async def test_a_refresh_after_a_reconnect_waits_out_an_outage(
    fresh_server: NatsServer, connected: Connected
) -> None:
    nc = await connected()
    js = nc.jetstream()
    await ensure_topology(js, REGISTRY.buckets)
    await create_view_buckets(js, REGISTRY.buckets, 2)
    views = ActiveViews()
    await views.start(nc)
    await views.stop()  # what follows goes by unseen, as while disconnected
    await write_pointer(js, 2)
    fresh_server.stop()
    refreshing = asyncio.ensure_future(views.refresh())
    # Longer than a JetStream request's 5 s timeout: a refresh that gave up
    # at the first timeout would have failed by the time the server is back.
    await asyncio.sleep(6)
    await asyncio.to_thread(fresh_server.start)
    await asyncio.wait_for(refreshing, 15)
    assert views.current.version == 2
