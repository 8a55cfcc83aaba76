"""BoundedPull on the reactor's durable consumer: a request for the room there is, one at a time."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from contracts.connection import NatsSettings, connect
from contracts.topology import COMMANDS_STREAM, REACTOR_CONSUMER, ensure_topology
from reactor.consumer import consumer_config
from reactor.pull import LOST_AFTER, BoundedPull, PullFailed
from tests.conftest import REGISTRY
from tests.helpers import eventually, make_command, publish_command
from tests.processes import NATS_PASSWORD, NATS_USER, NatsServer

EXPIRES = 0.2


async def pull_on(
    nc: Client, js: JetStreamContext, expires: float = EXPIRES, wake: asyncio.Event | None = None
) -> BoundedPull:
    await js.add_consumer(COMMANDS_STREAM, consumer_config())
    pull = BoundedPull(
        nc, COMMANDS_STREAM, REACTOR_CONSUMER, wake or asyncio.Event(), most=10, expires=expires
    )
    await pull.start()
    return pull


async def _arrived(pull: BoundedPull, n: int) -> bool | None:
    return True if pull.buffered == n else None


async def _brings_the_next_command(pull: BoundedPull, js: JetStreamContext) -> None:
    """A command published now arrives through the request open (and is taken)."""
    command = make_command()
    await publish_command(js, command)
    await eventually(lambda: _arrived(pull, 1))
    [msg] = pull.take()
    assert command.command_id.encode() in msg.data


async def _failure(pull: BoundedPull) -> str | None:
    """Why the pull failed, once it has."""
    try:
        pull.take()
    except PullFailed as exc:
        return str(exc)
    return None


async def test_one_request_at_a_time_for_the_room_asked(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    pull = await pull_on(fresh_nc, fresh_js)
    for _ in range(5):
        await publish_command(fresh_js, make_command())
    await pull.ask(2)
    await pull.ask(3)  # a request is open: no second one
    await eventually(lambda: _arrived(pull, 2))
    assert pull.held == 2  # the two arrived; the request is over, none asked since
    assert len(pull.take()) == 2
    assert pull.held == 0
    await pull.ask(3)
    await eventually(lambda: _arrived(pull, 3))
    assert len(pull.take()) == 3
    info = await fresh_js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
    assert (info.num_ack_pending, info.num_pending) == (5, 0)
    assert await pull.close() == []


async def test_an_expired_request_ends_with_its_408_and_the_next_ask_makes_another(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    pull = await pull_on(fresh_nc, fresh_js, expires=1.0)
    await pull.ask(4)
    assert pull.held == 4

    async def over() -> bool | None:
        return True if pull.held == 0 else None

    # Its 408 at 1 s, well before it would be taken as lost (1 s + LOST_AFTER).
    await eventually(over, within=1.0 + LOST_AFTER / 2)
    await pull.ask(4)
    assert pull.held == 4
    await _brings_the_next_command(pull, fresh_js)
    assert pull.held <= 3  # 3 while the request is open, 0 once it expired
    assert await pull.close() == []


async def test_close_waits_out_the_open_request_and_hands_back_what_it_brings(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    pull = await pull_on(fresh_nc, fresh_js, expires=1.0)
    await pull.ask(3)
    closing = asyncio.create_task(pull.close())
    await asyncio.sleep(0)  # closing: no more asking, waiting for the request's end
    command = make_command()
    await publish_command(fresh_js, command)  # comes through the open request
    [msg] = await closing  # arrived, not taken: the caller hands it back
    assert command.command_id.encode() in msg.data
    assert pull.held == 0


async def test_a_status_other_than_an_end_fails_the_pull(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    # A pull from a push consumer gets "409 Consumer is push based": asked
    # again at once it would get the same answer.
    await fresh_js.add_consumer(
        COMMANDS_STREAM, api.ConsumerConfig(durable_name="pushed", deliver_subject="elsewhere")
    )
    pull = BoundedPull(fresh_nc, COMMANDS_STREAM, "pushed", asyncio.Event(), most=10)
    await pull.start()
    await pull.ask(3)
    assert "push based" in await eventually(lambda: _failure(pull))
    await pull.close(wait=False)


async def test_a_deleted_consumer_fails_the_pull(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    pull = await pull_on(fresh_nc, fresh_js)
    await fresh_js.delete_consumer(COMMANDS_STREAM, REACTOR_CONSUMER)
    await pull.ask(3)
    assert "503" in await eventually(lambda: _failure(pull))  # no responders
    with pytest.raises(PullFailed):
        pull.take()
    await pull.close(wait=False)


async def test_a_request_asks_for_at_most_most(
    fresh_nc: Client, fresh_js: JetStreamContext
) -> None:
    pull = await pull_on(fresh_nc, fresh_js)
    await pull.ask(25)  # most is 10
    assert pull.held == 10
    assert await pull.close() == []


async def test_a_server_shutdown_ends_the_request_and_pulling_goes_on_after_a_reconnect(
    fresh_server: NatsServer,
) -> None:
    settings = NatsSettings(url=fresh_server.url, user=NATS_USER, password=NATS_PASSWORD)
    nc = await connect(settings, "pull")
    try:
        js = nc.jetstream()
        await ensure_topology(js, REGISTRY.buckets)
        wake = asyncio.Event()
        pull = await pull_on(nc, js, expires=30.0, wake=wake)  # open when the server goes down
        await pull.ask(4)
        assert pull.held == 4
        restarting = asyncio.ensure_future(asyncio.to_thread(fresh_server.restart))
        try:
            await asyncio.wait_for(wake.wait(), 10)  # its 409 "Server Shutdown", 50 ms first
            assert pull.take() == []  # an end, not a failure
            await pull.ask(4)  # a request now would be lost with the server: none is made
            assert pull.held == 0
        finally:
            # Restarted before the fixture stops it, however this ends: a failure here
            # left the restart's new server running, stopped by nobody.
            await restarting

        async def reconnected() -> bool | None:
            return True if nc.is_connected else None

        await eventually(reconnected)
        await pull.ask(4)  # reconnected: a new one
        assert pull.held == 4
        await _brings_the_next_command(pull, js)
        await pull.close(wait=False)
    finally:
        await nc.close()
