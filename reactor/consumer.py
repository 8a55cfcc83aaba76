"""The reactor loop: pull commands, apply them, publish their notices, ack.

Protocol (DESIGN.md §3, §5):
- One durable pull consumer (`reactor`) on COMMANDS, explicit acks, shared by
  every reactor process. Fetches long-poll, so a command is handled as soon
  as it arrives; up to `max_in_flight` commands are handled concurrently.
- Per command: apply (write the projection) -> publish the notice to NOTICES
  (`Nats-Msg-Id` = notice:<command id>, so a re-emit is deduplicated) -> ack.
  A crash anywhere before the ack means redelivery; the projection writes are
  idempotent, and a redelivered command whose notice is already stored
  re-emits that very notice instead of deciding again.
- An exception is treated as transient: nak with backoff. On the last
  delivery the command gets a `failed` "could not be processed" notice and
  is terminated.
- A message that is not a command at all is terminated and logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from contracts.commands import Command, command_decoder, encoder
from contracts.lookups import find_notice
from contracts.notices import Notice
from contracts.topology import COMMANDS_STREAM, REACTOR_CONSUMER, ensure_topology, notice_subject
from reactor.handlers import Decision, to_notice, unprocessable_notice

log = logging.getLogger(__name__)

MAX_DELIVER = 5
ACK_WAIT = 30.0
MAX_SIMULATED_DELAY = 60.0

Handler = Callable[[Command], Awaitable[Decision]]
Clock = Callable[[], datetime]


def consumer_config(
    max_deliver: int = MAX_DELIVER, ack_wait: float = ACK_WAIT
) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=REACTOR_CONSUMER,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=1000,
        filter_subject="cmd.>",
        deliver_policy=api.DeliverPolicy.ALL,
    )


async def _quietly(awaitable: Awaitable[None]) -> None:
    """Await a clean-up step whose failure changes nothing (the connection may be gone)."""
    try:
        await awaitable
    except nats.errors.Error as exc:
        log.debug("ignored during clean-up: %r", exc)


def retry_delay(num_delivered: int) -> float:
    """Backoff before redelivery: 0.5 s, 1 s, 2 s, ... capped at 30 s."""
    return float(min(0.5 * 2 ** (num_delivered - 1), 30.0))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reactor:
    def __init__(
        self,
        js: JetStreamContext,
        handlers: dict[type, Handler],
        *,
        dev: bool = False,
        max_in_flight: int = 64,
        max_deliver: int = MAX_DELIVER,
        backoff: Callable[[int], float] = retry_delay,
        clock: Clock = utcnow,
    ) -> None:
        self._js = js
        self._handlers = handlers
        self._dev = dev
        self._max_in_flight = max_in_flight
        self._max_deliver = max_deliver
        self._backoff = backoff
        self._clock = clock
        self._in_flight: set[asyncio.Task[None]] = set()
        self.bound = False  # bound to the durable consumer, fetching

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then let in-flight commands finish."""
        sub: JetStreamContext.PullSubscription | None = await self._bind()
        log.info("reactor ready (dev mode: %s)", "on" if self._dev else "off")
        try:
            while not stop.is_set():
                free = self._max_in_flight - len(self._in_flight)
                if free <= 0:
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    sub = sub or await self._bind()
                    msgs = await sub.fetch(batch=free, timeout=1.0)
                except TimeoutError:
                    # Nothing to fetch. nats-py raises nats.errors.TimeoutError or,
                    # when its deadline runs out between two requests, a bare
                    # asyncio.TimeoutError: both are TimeoutError.
                    continue
                except nats.errors.Error as exc:
                    # The consumer or stream went away (purge, server restart
                    # without its store, JetStream still starting): bind again.
                    log.warning(
                        "fetching commands failed (%s: %s); binding again in 1s",
                        type(exc).__name__,
                        exc,
                    )
                    if sub is not None:
                        await _quietly(sub.unsubscribe())
                    sub, self.bound = None, False
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                    continue
                for msg in msgs:
                    task = asyncio.create_task(self._process(msg))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
        finally:
            # Unsubscribe before anyone drains (PITFALLS: drain after an empty
            # fetch can hang), then let what was started finish.
            if sub is not None:
                await _quietly(sub.unsubscribe())
            if self._in_flight:
                await asyncio.wait(self._in_flight, timeout=ACK_WAIT / 2)

    async def _bind(self) -> JetStreamContext.PullSubscription:
        """Create or update the durable consumer, then bind to it (PITFALLS: not pull_subscribe)."""
        await ensure_topology(self._js)
        await self._js.add_consumer(COMMANDS_STREAM, consumer_config(self._max_deliver))
        sub = await self._js.pull_subscribe_bind(REACTOR_CONSUMER, COMMANDS_STREAM)
        self.bound = True
        return sub

    async def _process(self, msg: Msg) -> None:
        try:
            command = command_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.error("dropping %s: not a command (%s)", msg.subject, exc)
            await msg.term()
            return
        delivered = msg.metadata.num_delivered or 1
        try:
            if self._dev and command.simulate_delay_s > 0:
                await self._simulate_delay(msg, command.simulate_delay_s)
            notice = await self._outcome(command, delivered)
            await self._publish(command, notice)
            await msg.ack()
        except Exception as exc:
            await self._failed_attempt(msg, command, delivered, exc)

    async def _outcome(self, command: Command, delivered: int) -> Notice:
        if delivered > 1 and (stored := await find_notice(self._js, command.command_id)):
            return stored.notice  # decided before the ack was lost: say the same again
        handler = self._handlers[type(command.payload)]
        return to_notice(command, await handler(command), self._clock())

    async def _publish(self, command: Command, notice: Notice) -> None:
        await self._js.publish(
            notice_subject(command.session_id, command.command_id),
            encoder.encode(notice),
            headers={"Nats-Msg-Id": f"notice:{command.command_id}"},
        )

    async def _failed_attempt(
        self, msg: Msg, command: Command, delivered: int, exc: Exception
    ) -> None:
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if delivered < self._max_deliver:
            delay = self._backoff(delivered)
            log.warning(
                "command %s attempt %d failed (%s); retry in %.1fs",
                command.command_id,
                delivered,
                reason,
                delay,
            )
            await msg.nak(delay=delay)
            return
        log.error(
            "command %s failed %d times (%s); giving up", command.command_id, delivered, reason
        )
        try:
            await self._publish(command, unprocessable_notice(command, reason, self._clock()))
            await msg.term()
        except Exception:
            log.exception("could not publish the failed notice of command %s", command.command_id)

    async def _simulate_delay(self, msg: Msg, seconds: float) -> None:
        """Dev mode only: sleep, telling the server we are still at it."""
        remaining = min(seconds, MAX_SIMULATED_DELAY)
        while remaining > 0:
            step = min(remaining, ACK_WAIT / 3)
            await asyncio.sleep(step)
            remaining -= step
            await msg.in_progress()
