"""The reactor loop: pull commands, handle them, publish their notices, ack.

Protocol:
- One durable pull consumer (`reactor`) on COMMANDS, explicit acks, shared by
  every reactor process. A pull request is open whenever there is room
  (`reactor.pull.BoundedPull`: it asks for the room there is, and is asked
  again when it ends), so a command is handled as soon as it arrives, with
  no request per command at a steady rate; up to `max_in_flight` commands
  are handled concurrently, and never more are pulled than that.
- Per command: handle (`reactor.handling`: decide, append the events, write
  the inline views) -> publish the notice to NOTICES -> ack. The notice's
  `Nats-Msg-Id` is notice:<command id>:<command stream seq>, so a re-emit for
  the same message is deduplicated while a replayed dead letter (a new
  message) may answer again. A crash anywhere before the ack means
  redelivery: the append is guarded (message ids, expected sequence) and the
  view writes are checkpointed, and a redelivered command whose notice is
  already stored re-emits that very notice.
- NATS answering as unavailable (a cluster electing a stream's leader) is
  waited out in place for up to NATS_PATIENCE, and is not an attempt. A
  command handled for longer than a third of the ack wait is kept (`+WPI`,
  every third of it) so that it is not redelivered to another reactor while
  this one still works on it.
- Any other exception is transient: nak with backoff. The attempt limit is the
  reactor's, not the server's (the consumer redelivers without limit): on
  the last attempt the command gives back a value it reserved for an
  aggregate that never came to be (`abandon`), is copied to DEADLETTERS, gets
  a `failed` "could not be processed" notice and is terminated. Each step is
  idempotent, so a crash halfway repeats it on the next delivery instead of
  leaving the command with no outcome.
- A business rejection is an outcome, not an error: a `failed` notice, ack.
- A message that is not a command at all (bad JSON, unknown type, a payload
  that breaks its schema) is dead-lettered, logged once and terminated; the
  next command is not held up.
- Stop: no new requests; what the open request still brings (it expires
  within a second) and what was pulled and not started is nak'ed for
  immediate redelivery, and the subscription ends only after that request
  (a message sent to a request nobody listens to would wait out the ack
  wait); in-flight commands get `stop_grace` seconds to finish, the rest
  are cancelled and nak'ed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from contracts import tracing
from contracts.commands import MAX_SIMULATED_DELAY, Command, command_decoder, encoder
from contracts.connection import while_unavailable
from contracts.logs import bound
from contracts.lookups import COMMAND_SEQ_HEADER, find_notice
from contracts.notices import Notice
from contracts.topology import COMMANDS_ALL, COMMANDS_STREAM, REACTOR_CONSUMER, notice_subject
from reactor.deadletters import deadletter, record_dropped
from reactor.handling import Clock, Poison, utcnow
from reactor.jobs import pause
from reactor.notices import unfinished, unknown_outcome, unprocessable
from reactor.pull import BoundedPull

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Deliveries past the attempt limit spent trying to dead-letter a command and tell
# its outcome, before it is dropped from redelivery (never retried for ever).
GIVE_UP_RETRIES = 5
ACK_WAIT = 30.0
# How long a command's handling keeps asking a NATS that answers as unavailable
# (a cluster electing a leader) before the attempt counts as failed; at most
# half the ack wait, so the command is not redelivered meanwhile.
NATS_PATIENCE = 15.0
STOP_GRACE = 10.0


class Handler(Protocol):
    """What the loop needs of the command handler (`reactor.handling.CommandHandler`)."""

    def payload(self, command: Command) -> object:
        """Check the command can be handled here at all; raise Poison if not."""

    async def handle(self, command: Command) -> Notice:
        """Decide, append, write the inline views; the notice to publish."""

    async def abandon(self, command: Command) -> bool:
        """A command given up on: give back what it reserved for nothing; whether it did."""

    async def took_effect(self, command: Command) -> bool:
        """Whether an event the command decided is stored (read from the stream's leader)."""


def consumer_config(ack_wait: float = ACK_WAIT) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=REACTOR_CONSUMER,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,  # the reactor counts attempts itself (module docstring)
        max_ack_pending=1000,
        filter_subject=COMMANDS_ALL,
        deliver_policy=api.DeliverPolicy.ALL,
    )


async def _quietly(awaitable: Awaitable[None]) -> None:
    """Await a clean-up step whose failure changes nothing (the connection may be gone)."""
    try:
        await awaitable
    except nats.errors.Error as exc:
        log.debug("ignored during clean-up: %r", exc)


async def _set_when(happened: asyncio.Event, then: asyncio.Event) -> None:
    await happened.wait()
    then.set()


def retry_delay(num_delivered: int) -> float:
    """Backoff before redelivery: 0.5 s, 1 s, 2 s, ... capped at 30 s."""
    return float(min(0.5 * 2 ** (num_delivered - 1), 30.0))


class Reactor:
    def __init__(
        self,
        js: JetStreamContext,
        handler: Handler,
        *,
        prepare: Callable[[], Awaitable[None]] | None = None,
        dev: bool = False,
        max_in_flight: int = 64,
        max_attempts: int = MAX_ATTEMPTS,
        ack_wait: float = ACK_WAIT,
        stop_grace: float = STOP_GRACE,
        backoff: Callable[[int], float] = retry_delay,
        clock: Clock = utcnow,
        access_log: bool = True,
    ) -> None:
        self._access_log = access_log
        self._js = js
        self._handler = handler
        self._prepare = prepare
        self._dev = dev
        self._max_in_flight = max_in_flight
        self._max_attempts = max_attempts
        self._ack_wait = ack_wait
        self._stop_grace = stop_grace
        self._backoff = backoff
        self._clock = clock
        # Each command being handled: its task, its message and when it was started.
        self._in_flight: dict[asyncio.Task[None], tuple[Msg, float]] = {}
        self._wake = asyncio.Event()  # a command arrived or finished, or stop
        self.bound = False  # bound to the durable consumer, pulling

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish or hand back in-flight commands."""
        wake = self._wake
        waker = asyncio.create_task(_set_when(stop, wake))
        keeper = asyncio.create_task(self._keep_handled(self._ack_wait / 3))
        pull: BoundedPull | None = None
        try:
            pull = await self._bind()
            log.info("reactor ready (dev mode: %s)", "on" if self._dev else "off")
            while not stop.is_set():
                wake.clear()  # before anything that waits, so no wake-up is lost
                try:
                    pull = pull or await self._bind()
                    await pull.ask(self._max_in_flight - len(self._in_flight) - pull.held)
                    msgs = pull.take()
                except nats.errors.Error as exc:
                    # The consumer or stream went away (purge, server restart
                    # without its store, JetStream still starting): bind again.
                    log.warning(
                        "pulling commands failed (%s: %s); binding again in 1s",
                        type(exc).__name__,
                        exc,
                    )
                    if pull is not None:
                        await self._hand_back(await pull.close(wait=False))
                    pull, self.bound = None, False
                    await pause(stop, 1.0)
                    continue
                if not msgs:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await wake.wait()
                    continue
                now = asyncio.get_running_loop().time()
                for msg in msgs:
                    task = asyncio.create_task(self._process(msg))
                    self._in_flight[task] = (msg, now)
                    task.add_done_callback(self._finished)
        finally:
            waker.cancel()
            # Stop asking; what arrives for the open request, or arrived and was
            # not started, goes back at once. Then let what was started finish,
            # or hand it back.
            try:
                if pull is not None:
                    await self._hand_back(await pull.close())
                await self._finish_in_flight()  # kept meanwhile, as they run
            finally:
                keeper.cancel()

    def wake(self) -> None:
        """Look again now, not at the loop's next tick (after a reconnect: ask for commands)."""
        self._wake.set()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._wake.set()  # room for another

    async def _keep_handled(self, every: float) -> None:
        """Every `every` seconds, tell the server that each command handled for that long
        is still being handled (`+WPI` starts its ack wait again). Its steps wait NATS out
        in place (twice NATS_PATIENCE at most, plus their requests' timeouts): without
        this, past the ack wait another reactor would get it too, and its deliveries,
        counted as attempts, would run out while it is still being worked on."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for msg, since in list(self._in_flight.values()):
                if now - since >= every:
                    await _quietly(msg.in_progress())

    async def _hand_back(self, msgs: list[Msg]) -> None:
        """Commands pulled and not started: redelivered now, to this or another reactor."""
        for msg in msgs:
            await _quietly(msg.nak())
        if msgs:
            log.info("handed back %d commands pulled and not started", len(msgs))

    async def _finish_in_flight(self) -> None:
        if not self._in_flight:
            return
        log.info(
            "waiting up to %.0fs for %d in-flight commands", self._stop_grace, len(self._in_flight)
        )
        _, unfinished = await asyncio.wait(list(self._in_flight), timeout=self._stop_grace)
        for task in unfinished:
            task.cancel()  # _process naks it: redelivered at once, to another reactor
        if unfinished:
            log.warning("handed back %d unfinished commands", len(unfinished))
            await asyncio.wait(unfinished, timeout=5)

    async def _bind(self) -> BoundedPull:
        """Create or update the durable consumer (not pull_subscribe: it would keep an
        existing durable's old config, nats.py #506), then pull from it."""
        if self._prepare is not None:
            await self._prepare()  # the streams and buckets, after a purge or a new server
        await self._js.add_consumer(COMMANDS_STREAM, consumer_config(self._ack_wait))
        # The context's own connection (nats-py keeps it private). A request
        # expires after 1 s: a stopping reactor waits at most that for its last.
        # At most half the limit a request: after a reconnect, the request from
        # before (perhaps still alive) leaves room for a new one at once.
        pull = BoundedPull(
            self._js._nc,
            COMMANDS_STREAM,
            REACTOR_CONSUMER,
            self._wake,
            most=max(1, self._max_in_flight // 2),
            expires=1.0,
        )
        await pull.start()
        self.bound = True
        return pull

    async def _process(self, msg: Msg) -> None:
        envelope: Command | None = None
        try:
            command = envelope = command_decoder.decode(msg.data)
            self._handler.payload(command)
        except (msgspec.DecodeError, Poison, UnicodeDecodeError, RecursionError) as exc:
            await self._poison(msg, exc, envelope)
            return
        delivered = msg.metadata.num_delivered or 1
        with bound(
            command_id=command.command_id,
            correlation_id=command.correlation_id,
            trace_id=tracing.trace_id(command.traceparent),
        ):
            await self._handle_delivery(msg, command, delivered)

    async def _handle_delivery(self, msg: Msg, command: Command, delivered: int) -> None:
        try:
            if self._dev and command.simulate_delay_s > 0:
                await self._simulate_delay(command.simulate_delay_s)
            if delivered > self._max_attempts:
                raise _GiveUp(f"{delivered - 1} attempts failed")
            # A cluster electing a stream's leader is not the command's fault: asked
            # again here (each step is safe to repeat), not counted as an attempt.
            # (The log lines carry the command's id: bound above.)
            patience = min(NATS_PATIENCE, self._ack_wait / 2)
            notice = await while_unavailable(
                partial(self._outcome, command, msg, delivered), within=patience, what="a command"
            )
            await while_unavailable(
                partial(self._publish, command, notice, msg), within=patience, what="a notice"
            )
            await msg.ack()
            if self._access_log:  # a line per command, with the ids bound (plain or JSON)
                status = notice.error.status if notice.error else ""
                log.info("%s %s %s", command.type, notice.status, status)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await msg.nak()  # stopping: let another reactor have it now
            raise
        except Exception as exc:
            await self._failed_attempt(msg, command, delivered, exc)

    async def _outcome(self, command: Command, msg: Msg, delivered: int) -> Notice:
        if delivered > 1:
            stored = await find_notice(self._js, command.command_id)
            if stored is not None and stored.command_seq == msg.metadata.sequence.stream:
                return stored.notice  # decided before the ack was lost: say the same again
        return await self._handler.handle(command)

    async def _publish(self, command: Command, notice: Notice, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        await self._js.publish(
            notice_subject(command.session_id, command.command_id),
            encoder.encode(notice),
            headers={
                "Nats-Msg-Id": f"notice:{command.command_id}:{seq}",
                COMMAND_SEQ_HEADER: str(seq),
                **(
                    {tracing.HEADER: tracing.child(command.traceparent)}
                    if command.traceparent
                    else {}
                ),
            },
        )

    async def _failed_attempt(
        self, msg: Msg, command: Command, delivered: int, exc: Exception
    ) -> None:
        reason = (
            str(exc) if isinstance(exc, _GiveUp) else f"{type(exc).__name__}: {exc}".rstrip(": ")
        )
        if delivered < self._max_attempts:
            delay = self._backoff(delivered)
            log.warning(
                "command %s attempt %d failed (%s); retry in %.1fs",
                command.command_id,
                delivered,
                reason,
                delay,
            )
            await _quietly(msg.nak(delay=delay))
            return
        last = delivered >= self._max_attempts + GIVE_UP_RETRIES
        if not await self._abandon(command, last=last):
            # Its reservation could not be given back: try that again on the next
            # delivery (bounded like the rest of giving up), not leave it held at once.
            await _quietly(msg.nak(delay=self._backoff(delivered)))
            return
        log.error(
            "command %s failed %d times (%s); dead-lettered", command.command_id, delivered, reason
        )
        try:
            await self._deadletter(msg, "exhausted", reason)
            await self._publish(command, await self._given_up(command, reason), msg)
            await msg.term()
        except Exception:
            if last:
                # Bounded: even giving up keeps failing (NOTICES or DEADLETTERS gone?).
                # Stop redelivering; the command stays in COMMANDS, its sequence logged
                # and recorded for `task status`.
                log.exception(
                    "command %s: could not dead-letter it or tell its outcome after %d "
                    "deliveries; dropped from redelivery (it stays in COMMANDS, seq %d)",
                    command.command_id,
                    delivered,
                    msg.metadata.sequence.stream,
                )
                await self._drop(msg, "exhausted", reason)
                return
            # Not terminated, so redelivered: the next delivery tries these steps again.
            log.exception("could not dead-letter command %s yet", command.command_id)
            await _quietly(msg.nak(delay=self._backoff(delivered)))

    async def _given_up(self, command: Command, reason: str) -> Notice:
        """The notice of a command given up on: not to be sent again if its events stand
        (its views were not written, say), that it could not be processed if they do
        not, and that it may have taken effect if that cannot be read."""
        try:
            stands = await self._handler.took_effect(command)
        except Exception as exc:  # the outage that exhausted it, maybe: not known
            log.warning(
                "command %s: whether it took effect is not known: %r", command.command_id, exc
            )
            return unknown_outcome(command, reason, self._clock())
        make = unfinished if stands else unprocessable
        return make(command, reason, self._clock())

    async def _abandon(self, command: Command, *, last: bool) -> bool:
        """Give back what the command reserved for an aggregate that never came to be;
        False if that failed (the outage that exhausted the command, maybe) and should be
        tried again. On the `last` delivery it is given up: the value stays held, and
        the dead letter and the notice still go out."""
        try:
            if await self._handler.abandon(command):
                log.info(
                    "command %s: its aggregate never came to be; its reservation is released",
                    command.command_id,
                )
        except Exception:
            log.exception(
                "command %s: could not give back what it reserved; %s",
                command.command_id,
                "it stays held" if last else "tried again at the next delivery",
            )
            return last
        return True

    async def _poison(self, msg: Msg, exc: Exception, envelope: Command | None) -> None:
        """Dead-letter what is not a command. If its envelope is one (an unknown type, a
        payload its schema refuses: an API newer than this reactor), its sender is told
        it failed, rather than left waiting."""
        log.error("dead-lettering %s: not a command (%s)", msg.subject, exc)
        delivered = msg.metadata.num_delivered or 1
        try:
            await self._deadletter(msg, "poison", str(exc))
            if envelope is not None:
                reason = f"not a command: {exc}"
                await self._publish(envelope, unprocessable(envelope, reason, self._clock()), msg)
            await msg.term()
        except nats.errors.Error:
            if delivered >= 1 + GIVE_UP_RETRIES:  # bounded, as for a command (above)
                log.exception(
                    "could not dead-letter %s after %d deliveries; dropped from redelivery "
                    "(it stays in COMMANDS, seq %d)",
                    msg.subject,
                    delivered,
                    msg.metadata.sequence.stream,
                )
                await self._drop(msg, "poison", str(exc))
                return
            log.exception("could not dead-letter %s yet", msg.subject)
            await _quietly(msg.nak(delay=self._backoff(delivered)))

    async def _drop(self, msg: Msg, reason: str, error: str) -> None:
        await record_dropped(self._js, msg, reason, error, self._clock())
        await _quietly(msg.term())

    async def _deadletter(self, msg: Msg, reason: str, error: str) -> None:
        await deadletter(self._js, msg, reason, error, self._clock())

    async def _simulate_delay(self, seconds: float) -> None:
        """Dev mode only: sleep (the command is kept meanwhile, as any slow one)."""
        await asyncio.sleep(min(seconds, MAX_SIMULATED_DELAY))


class _GiveUp(Exception):
    """Delivered past the attempt limit (an earlier give-up did not finish)."""
