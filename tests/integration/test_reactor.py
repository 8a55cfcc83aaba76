"""The reactor loop, on a nats-server of each test's own (the durable consumer is shared)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.commands import Command, encoder
from contracts.lookups import StoredNotice, find_notice
from contracts.notices import Notice
from contracts.topology import (
    COMMANDS_STREAM,
    DEADLETTERS_STREAM,
    NOTICES_STREAM,
    REACTOR_CONSUMER,
    RESERVATIONS_BUCKET,
    event_subject,
)
from reactor.consumer import GIVE_UP_RETRIES, Handler, Reactor
from reactor.eventstore import Appended, EventStore
from reactor.handling import CommandHandler
from reactor.reservations import Reservations
from reactor.status import report
from tests.conftest import REGISTRY
from tests.e2e.faults import settled
from tests.helpers import (
    command_handler,
    event_types,
    eventually,
    make_command,
    payload_of,
    publish_command,
    view_state,
)


async def real_handler(js: JetStreamContext) -> CommandHandler:
    return await command_handler(js)


class Counting:
    """Wraps the handler: counts `handle` calls and raises for the first `failures` of them."""

    def __init__(self, inner: Handler, failures: int = 0) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    def payload(self, command: Command) -> object:
        return self.inner.payload(command)

    async def handle(self, command: Command) -> Notice:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"simulated outage {self.calls}")
        return await self.inner.handle(command)

    async def abandon(self, command: Command) -> bool:
        return await self.inner.abandon(command)

    async def took_effect(self, command: Command) -> bool:
        return await self.inner.took_effect(command)


@asynccontextmanager
async def running(reactor: Reactor) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(reactor.run(stop))

    async def bound() -> bool | None:
        return True if reactor.bound else None

    try:
        await eventually(bound)
        yield
    finally:
        stop.set()
        await task


def fast_reactor(js: JetStreamContext, handler: Handler, **kw: Any) -> Reactor:
    return Reactor(js, handler, backoff=lambda n: 0.05, **kw)


async def outcome(js: JetStreamContext, command: Command) -> StoredNotice:
    return await eventually(lambda: find_notice(js, command.command_id))


async def test_command_gets_a_succeeded_notice_and_its_view(fresh_js: JetStreamContext) -> None:
    handler = Counting(await real_handler(fresh_js))
    command = make_command()
    async with running(fast_reactor(fresh_js, handler)):
        await publish_command(fresh_js, command)
        stored = await outcome(fresh_js, command)
    assert stored.notice.status == "succeeded"
    assert stored.notice.resource is not None
    assert await view_state(fresh_js, "locations", command.aggregate_id) == stored.notice.resource
    assert handler.calls == 1


async def test_transient_failure_is_retried_then_succeeds(fresh_js: JetStreamContext) -> None:
    handler = Counting(await real_handler(fresh_js), failures=2)
    command = make_command()
    async with running(fast_reactor(fresh_js, handler)):
        await publish_command(fresh_js, command)
        stored = await outcome(fresh_js, command)
    assert stored.notice.status == "succeeded"
    assert handler.calls == 3


class AbandonFails(Counting):
    """Every attempt fails, and so does giving back what the command reserved."""

    async def abandon(self, command: Command) -> bool:
        raise ConnectionError("simulated outage at the reservations")


@pytest.mark.parametrize(
    ("wrap", "deliveries"),
    [(Counting, 3), (AbandonFails, 3 + GIVE_UP_RETRIES)],  # tried once a delivery
    ids=["plain", "release-fails-too"],
)
async def test_after_max_deliveries_the_command_fails_as_not_processed(
    fresh_js: JetStreamContext, wrap: type[Counting], deliveries: int
) -> None:
    """Dead-lettered with a failed notice, even when what it reserved cannot be given
    back (the outage that exhausted it may be the one that stops the release): that is
    tried again for GIVE_UP_RETRIES deliveries, then given up."""
    handler = wrap(await real_handler(fresh_js), failures=1000)
    command = make_command()
    async with running(fast_reactor(fresh_js, handler, max_attempts=3)):
        await publish_command(fresh_js, command)
        stored = await outcome(fresh_js, command)
    assert stored.notice.status == "failed"
    assert stored.notice.error is not None
    assert stored.notice.error.title == "Command could not be processed"
    assert "outage" not in stored.notice.error.detail  # no internals to the sender
    assert handler.calls == 3  # attempts: the deliveries after them only give up
    dead = await deadletter_of(fresh_js, f"cmd.CreateLocation.{command.command_id}")
    assert dead.data == encoder.encode(command)
    assert dead.headers is not None
    assert dead.headers["Dlq-Reason"] == "exhausted"
    assert dead.headers["Dlq-Error"].endswith(  # for the operator
        "simulated outage 3" if deliveries == 3 else f"{deliveries - 1} attempts failed"
    )
    assert dead.headers["Dlq-Deliveries"] == str(deliveries)


class FailingAppends(EventStore):
    """The real store, every append failing: an outage after the name was claimed."""

    async def append(self, *args: Any, **kwargs: Any) -> Appended:
        raise ConnectionError("simulated outage at the append")


class FailingAfter:
    """The real handler, every command failing after it was handled (appended)."""

    def __init__(self, inner: CommandHandler) -> None:
        self.inner = inner

    def payload(self, command: Command) -> object:
        return self.inner.payload(command)

    async def handle(self, command: Command) -> Notice:
        await self.inner.handle(command)
        raise ConnectionError("simulated outage after the append")

    async def abandon(self, command: Command) -> bool:
        return await self.inner.abandon(command)

    async def took_effect(self, command: Command) -> bool:
        return await self.inner.took_effect(command)


class FlakyRelease(Counting):
    """The handler, giving back a reservation failing the first `release_failures` times."""

    def __init__(self, inner: Handler, release_failures: int) -> None:
        super().__init__(inner)
        self.release_failures = release_failures

    async def abandon(self, command: Command) -> bool:
        if self.release_failures > 0:
            self.release_failures -= 1
            raise ConnectionError("simulated outage at the reservations")
        return await super().abandon(command)


@pytest.mark.parametrize("release_failures", [0, 1], ids=["released", "released-on-a-retry"])
async def test_a_command_given_up_before_its_append_gives_its_name_back(
    fresh_js: JetStreamContext, release_failures: int
) -> None:
    failing = FlakyRelease(
        await command_handler(fresh_js, FailingAppends(fresh_js._nc, REGISTRY)),
        release_failures,
    )
    reservations = Reservations(await fresh_js.key_value(RESERVATIONS_BUCKET))
    command = make_command()
    name = payload_of(command).name
    async with running(fast_reactor(fresh_js, failing, max_attempts=2)):
        await publish_command(fresh_js, command)
        stored = await outcome(fresh_js, command)
    assert stored.notice.error is not None
    assert stored.notice.error.title == "Command could not be processed"
    assert await reservations.owner("location-name", name) is None
    # So the name can be had: by another command, or by this one replayed.
    again = await (await real_handler(fresh_js)).handle(make_command(name=name))
    assert again.status == "succeeded", again.error


class FailingAfterUnseen(FailingAfter):
    """As FailingAfter, and whether the command's events are stored cannot be read."""

    async def took_effect(self, command: Command) -> bool:
        raise ConnectionError("simulated outage at the leader")


@pytest.mark.parametrize(
    ("wrap", "told"),
    [
        (FailingAfter, ("/problems/not-finished", "Do not send it again")),
        (FailingAfterUnseen, ("/problems/outcome-unknown", "Check what it would change")),
    ],
    ids=["known", "not-known"],
)
async def test_a_command_given_up_after_its_append_keeps_its_name(
    fresh_js: JetStreamContext, wrap: type[FailingAfter], told: tuple[str, str]
) -> None:
    handler = wrap(await real_handler(fresh_js))
    command = make_command()
    async with running(fast_reactor(fresh_js, handler, max_attempts=2)):
        await publish_command(fresh_js, command)
        stored = await outcome(fresh_js, command)
    assert stored.notice.status == "failed"
    # Told it took effect (or may have, when the store cannot say), so that it is not
    # sent again (a second location), not that it could not be processed.
    assert stored.notice.error is not None
    assert (stored.notice.error.type, told[1] in stored.notice.error.detail) == (told[0], True)
    # Its location exists (its event stands): the name is the location's.
    subject = event_subject("location", command.aggregate_id)
    assert await event_types(fresh_js, subject) == [(subject, "LocationCreated")]
    reservations = Reservations(await fresh_js.key_value(RESERVATIONS_BUCKET))
    assert await reservations.owner("location-name", payload_of(command).name) == (
        command.aggregate_id
    )


async def test_poison_message_is_dropped_and_later_commands_still_succeed(
    fresh_js: JetStreamContext,
) -> None:
    handler = Counting(await real_handler(fresh_js))
    command = make_command()
    unknown = msgspec.structs.replace(make_command(), type="Nonsense")
    bad_payload = msgspec.structs.replace(make_command(), payload=msgspec.Raw(b'{"name": 5}'))
    # Envelopes whose ids could not be subject tokens (a notice could never be stored).
    no_session = msgspec.structs.replace(make_command(), session_id="")
    dotted = msgspec.structs.replace(make_command(), aggregate_id="a.b")
    wildcard = msgspec.structs.replace(make_command(), session_id="*")
    poison = {
        "cmd.CreateLocation." + "0" * 32: b"{not a command",
        "cmd.Nonsense.x": b'{"command_id": 5}',
        f"cmd.Nonsense.{unknown.command_id}": encoder.encode(unknown),
        f"cmd.CreateLocation.{bad_payload.command_id}": encoder.encode(bad_payload),
        f"cmd.CreateLocation.{no_session.command_id}": encoder.encode(no_session),
        f"cmd.CreateLocation.{dotted.command_id}": encoder.encode(dotted),
        f"cmd.CreateLocation.{wildcard.command_id}": encoder.encode(wildcard),
    }
    async with running(fast_reactor(fresh_js, handler)):
        for subject, data in poison.items():
            await fresh_js.publish(subject, data)
        await publish_command(fresh_js, command)
        stored = await outcome(fresh_js, command)
        await settled(fresh_js)
    assert stored.notice.status == "succeeded"
    assert handler.calls == 1
    for subject, data in poison.items():
        dead = await deadletter_of(fresh_js, subject)
        assert dead.data == data
        assert dead.headers is not None
        assert dead.headers["Dlq-Reason"] == "poison"
    # An envelope that is a command (an unknown type, a payload its schema refuses: an
    # API newer than this reactor): its sender is told it failed, not left waiting.
    for sent in (unknown, bad_payload):
        told = await find_notice(fresh_js, sent.command_id)
        assert told is not None
        assert told.notice.status == "failed"
        assert told.notice.error is not None
        assert told.notice.error.type == "/problems/not-processed"


async def deadletter_of(js: JetStreamContext, subject: str) -> Any:
    return await js.get_last_msg(DEADLETTERS_STREAM, f"dlq.{subject}")


class LosesFirstAck(Reactor):
    """Publishes the notice, then 'crashes' before acking: the command is redelivered."""

    crashed = False

    async def _publish(self, command: Command, notice: Notice, msg: Msg) -> None:
        await super()._publish(command, notice, msg)
        if not self.crashed:
            self.crashed = True
            raise ConnectionError("died after publishing the notice")


async def test_redelivery_after_the_notice_re_emits_that_very_notice(
    fresh_js: JetStreamContext,
) -> None:
    handler = Counting(await real_handler(fresh_js))
    command = make_command()
    before = (await fresh_js.stream_info(NOTICES_STREAM)).state.messages
    reactor = LosesFirstAck(fresh_js, handler, backoff=lambda n: 0.05)
    async with running(reactor):
        await publish_command(fresh_js, command)
        first = await outcome(fresh_js, command)

        async def acked() -> bool | None:
            info = await fresh_js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
            return True if reactor.crashed and info.num_ack_pending == 0 else None

        await eventually(acked)
    assert handler.calls == 1  # decided once; the redelivery re-emitted the stored notice
    assert await find_notice(fresh_js, command.command_id) == first
    assert (await fresh_js.stream_info(NOTICES_STREAM)).state.messages == before + 1


def test_encoded_command_round_trips() -> None:
    command = make_command()
    from contracts.commands import command_decoder

    assert command_decoder.decode(encoder.encode(command)) == command


async def test_reactor_binds_again_when_its_consumer_disappears(fresh_js: JetStreamContext) -> None:
    handler = Counting(await real_handler(fresh_js))
    async with running(fast_reactor(fresh_js, handler)):
        await fresh_js.delete_consumer(COMMANDS_STREAM, REACTOR_CONSUMER)
        command = make_command()
        await publish_command(fresh_js, command)
        stored = await outcome(fresh_js, command)
    assert stored.notice.status == "succeeded"


async def test_giving_up_that_keeps_failing_is_bounded_too(fresh_js: JetStreamContext) -> None:
    handler = Counting(await real_handler(fresh_js), failures=1000)
    command = make_command()
    await fresh_js.delete_stream(NOTICES_STREAM)  # its failed notice cannot be stored
    async with running(fast_reactor(fresh_js, handler, max_attempts=2)):
        await publish_command(fresh_js, command)

        await settled(fresh_js)  # terminated: not redelivered for ever
        delivered = (await fresh_js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)).delivered
    assert handler.calls == 2  # the attempts; the deliveries after them only tried to give up
    assert delivered is not None
    assert delivered.consumer_seq == 2 + GIVE_UP_RETRIES
    dead = await deadletter_of(fresh_js, f"cmd.CreateLocation.{command.command_id}")
    assert dead.data == encoder.encode(command)  # it did reach the dead letters
    status = await report(fresh_js, REGISTRY)  # and `task status` shows it was dropped
    assert "  dropped      1  (not even dead-lettered; each stays in its stream)" in status
    listed = [line for line in status if f"cmd.CreateLocation.{command.command_id}" in line]
    assert len(listed) == 1
    assert "COMMANDS seq 1 " in listed[0]
    assert "exhausted" in listed[0]


async def test_poison_that_cannot_be_dead_lettered_is_bounded_and_listed(
    fresh_js: JetStreamContext,
) -> None:
    await fresh_js.delete_stream(DEADLETTERS_STREAM)  # nowhere to dead-letter it
    async with running(fast_reactor(fresh_js, Counting(await real_handler(fresh_js)))):
        await fresh_js.publish("cmd.CreateLocation." + "0" * 32, b"{not a command")

        await settled(fresh_js)
        delivered = (await fresh_js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)).delivered
    assert delivered is not None
    assert delivered.consumer_seq == 1 + GIVE_UP_RETRIES
    status = await report(fresh_js, REGISTRY)
    assert "  dropped      1  (not even dead-lettered; each stays in its stream)" in status
    assert any("COMMANDS seq 1  cmd.CreateLocation.000" in line for line in status)


class Holding:
    """A handler that holds every command until `release` is set (or it is cancelled)."""

    def __init__(self, inner: Handler) -> None:
        self.inner = inner
        self.release = asyncio.Event()
        self.calls = 0

    def payload(self, command: Command) -> object:
        return self.inner.payload(command)

    async def handle(self, command: Command) -> Notice:
        self.calls += 1
        await self.release.wait()
        return await self.inner.handle(command)

    async def abandon(self, command: Command) -> bool:
        return await self.inner.abandon(command)

    async def took_effect(self, command: Command) -> bool:
        return await self.inner.took_effect(command)

    async def started(self, n: int) -> None:
        """Wait until `n` commands are being held."""

        async def holding_n() -> bool | None:
            return True if self.calls == n else None

        await eventually(holding_n)


async def delivered_unacked(js: JetStreamContext) -> tuple[int, int]:
    """The reactor consumer's (delivered and not acked, not delivered yet)."""
    info = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
    return info.num_ack_pending, info.num_pending


async def test_a_command_handled_past_the_ack_wait_is_kept_not_redelivered(
    fresh_js: JetStreamContext,
) -> None:
    """A slow step (NATS waited out in place) can outlast the ack wait: the reactor tells
    the server it is still at it, so the command is not delivered again meanwhile (to
    another reactor, or this one), and its one delivery ends with its notice."""
    handler = Holding(await real_handler(fresh_js))
    command = make_command()
    async with running(fast_reactor(fresh_js, handler, ack_wait=1.0)):
        await publish_command(fresh_js, command)
        await handler.started(1)
        await asyncio.sleep(3.5)  # three and a half ack waits
        info = await fresh_js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
        assert (info.num_ack_pending, info.num_redelivered) == (1, 0)
        assert handler.calls == 1
        handler.release.set()
        stored = await outcome(fresh_js, command)
    assert stored.notice.status == "succeeded"
    assert handler.calls == 1


async def test_a_reactor_never_holds_more_commands_than_its_max_in_flight(
    fresh_js: JetStreamContext,
) -> None:
    handler = Holding(await real_handler(fresh_js))
    commands = [make_command() for _ in range(12)]
    for command in commands:  # a backlog before it starts: one pull could take them all
        await publish_command(fresh_js, command)
    async with running(fast_reactor(fresh_js, handler, max_in_flight=4)):
        await handler.started(4)
        assert await delivered_unacked(fresh_js) == (4, 8)
        # Nothing more over time either: past a pull request's expiry (1 s), when
        # a reactor that lost count would ask again.
        await asyncio.sleep(1.5)
        assert await delivered_unacked(fresh_js) == (4, 8)
        assert handler.calls == 4
        handler.release.set()
        stored = [await outcome(fresh_js, command) for command in commands]
    assert {s.notice.status for s in stored} == {"succeeded"}
    assert handler.calls == 12


async def test_a_stopped_reactor_hands_back_what_it_holds_at_once(
    fresh_js: JetStreamContext,
) -> None:
    holding = Holding(await real_handler(fresh_js))
    commands = [make_command() for _ in range(6)]
    first = fast_reactor(fresh_js, holding, max_in_flight=4, stop_grace=0.2)
    async with asyncio.timeout(10):  # stopping does not wait for a command to finish
        async with running(first):
            for command in commands:
                await publish_command(fresh_js, command)
            await holding.started(4)
    # The four it held were cancelled and handed back (nak'ed), and nothing was
    # pulled for it that nobody will handle: the next reactor has all six well
    # before the 30 s ack wait would let them go.
    handler = Counting(await real_handler(fresh_js))
    async with running(fast_reactor(fresh_js, handler)):
        stored = [await outcome(fresh_js, command) for command in commands]
    assert {s.notice.status for s in stored} == {"succeeded"}
    assert handler.calls == 6


async def test_a_reactor_stopping_with_a_pull_open_hands_back_what_it_brings(
    fresh_js: JetStreamContext,
) -> None:
    holding = Holding(await real_handler(fresh_js))
    commands = [make_command() for _ in range(3)]
    first = fast_reactor(fresh_js, holding, max_in_flight=4, stop_grace=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    for command in commands:
        await publish_command(fresh_js, command)
    await holding.started(3)  # one slot free: a pull request for it is open
    stop.set()
    late = make_command()
    await publish_command(fresh_js, late)  # while it stops: through that request, or not
    async with asyncio.timeout(10):
        await task
    handler = Counting(await real_handler(fresh_js))
    async with running(fast_reactor(fresh_js, handler)):
        stored = [await outcome(fresh_js, command) for command in [*commands, late]]
    assert {s.notice.status for s in stored} == {"succeeded"}
    assert handler.calls == 4
