"""Jobs that fold EVENTS in order: async views and policies, one runner each per reactor.

Every reactor process runs a runner for every job; a lease (`reactor.leases`)
lets one of them do the work and the others stand by to take over. The job
reads EVENTS after its stored position (`reactor.reader`), handles each
batch, and stores its new position:

- an async view applies the batch to its records, each record checkpointed
  in the same write as its state (`reactor.views`), then moves its progress
  (`view_progress`, read by `?min_position=`); a rebuild moving the view
  version restarts it on the new buckets, from their progress;
- a policy sends, for each event it reacts to, commands whose ids derive
  from the policy, the event and the issue's key: sent again after a crash,
  the server drops them by `Nats-Msg-Id` within its window and the reactor
  finds them handled after it. Their notices go to the event's session,
  `caused_by` the command that decided the event.

- an aggregator's partition (`reactor.aggregators`) folds its keyed events
  and writes records, memos and position in one atomic batch; runners of
  partitions take no more than their reactor's fair share (`reactor.members`).

When idle, a job still moves its position to the end of the stream (events
it does not read included), so a read waiting for position N is not left
waiting because N was another aggregate's event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Final, Protocol

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from contracts import tracing
from contracts.commands import NO_SESSION, Command, derived_command_id, encoder
from contracts.domain import EventMeta, Issue, Policy, View
from contracts.events import StoredEvent, TooNew
from contracts.failing import Failures
from contracts.registry import Registry
from contracts.topology import command_subject
from contracts.views import ActiveViews, ViewBuckets, progress_decoder
from reactor.leases import RENEW_EVERY, RETRY_EVERY, Lease
from reactor.reader import BATCH, EventReader
from reactor.views import ViewWriter, save_position

log = logging.getLogger(__name__)

IDLE_WAIT: Final = 1.0  # a fetch waits this long for events before the job checks the end


class Superseded(Exception):
    """Another runner wrote this job's position: what this one holds is stale."""


class Gate(Protocol):
    """How many jobs of a group this reactor may hold (`reactor.members.Share`)."""

    def reserve(self, job: str) -> bool:
        """Count `job` as held here if that keeps within the share; False otherwise."""

    def over(self, job: str) -> bool:
        """Whether this reactor holds more than its share (and `job` should go)."""

    def drop(self, job: str) -> None:
        """`job` is no longer held here."""


class Job(Protocol):
    name: str  # its lease: view.<name>, policy.<name> or aggregator.<name>.<partition>
    subjects: list[str]
    # Once caught up, how long to let events gather before reading on: each
    # batch costs the job a write per record it touches and one for its position.
    linger: float
    batch: int  # events read at once

    async def start(self) -> int:
        """Prepare to run; the position to read after."""

    async def handle(self, events: list[StoredEvent]) -> None: ...

    async def save(self, position: int) -> None: ...

    async def finish(self) -> None:
        """Wait for what `save` left going (a write in flight)."""

    def restart(self) -> asyncio.Event | None:
        """An event that, once set, means: stop and start again (new buckets)."""


class ViewJob:
    batch = BATCH

    def __init__(
        self, view: View, registry: Registry, active: ActiveViews, writer: ViewWriter
    ) -> None:
        # A folded view (counters, totals) is read with min_position when it must
        # be fresh; collecting 50 ms of events turns one write per event into one
        # per record per batch. A computed view is one user's summary, read right
        # after that user's change: it does not wait (events arriving while it
        # computes still come as one batch). Scenario 6 of the bench: post ->
        # summary p50 75 ms with the wait, 33 ms without.
        self.linger = 0.0 if view.compute is not None else 0.05
        self.view = view
        self.name = f"view.{view.name}"
        self.subjects = registry.event_filter(view.events)
        self._active = active
        self._writer = writer
        self._buckets: ViewBuckets | None = None
        self._changed: asyncio.Event | None = None

    async def start(self) -> int:
        self._changed = self._active.changed
        self._buckets = self._active.current
        self._writer.forget()  # it may have missed events since it last held the lease
        return await self._buckets.progress(self.view.name)

    async def handle(self, events: list[StoredEvent]) -> None:
        assert self._buckets is not None
        if self.view.compute is not None:
            await self._writer.recompute(self._buckets, self.view, events)
        else:
            await self._writer.apply(self._buckets, self.view, events)

    async def save(self, position: int) -> None:
        assert self._buckets is not None
        await self._writer.save_progress(self._buckets, self.view.name, position)

    async def finish(self) -> None:
        return None

    def restart(self) -> asyncio.Event | None:
        return self._changed


def issued_command(policy: Policy, registry: Registry, issue: Issue, meta: EventMeta) -> Command:
    """The command a policy sends for an event: the same however often it is made."""
    name = type(issue.command).__name__
    if registry.command(name) is None:
        raise TypeError(f"policy {policy.name} issued {name}, which is not a registered command")
    command_id = derived_command_id("policy", policy.name, str(meta.seq), issue.key)
    return follow_on(meta, issue.command, command_id, issue.aggregate_id, meta.at)


def follow_on(
    meta: EventMeta, payload: msgspec.Struct, command_id: str, aggregate_id: str, at: datetime
) -> Command:
    """A command caused by an event (a policy's, the mailer's): in the event's session,
    correlation and trace, caused by the event's command."""
    return Command(
        command_id=command_id,
        type=type(payload).__name__,
        aggregate_id=aggregate_id,
        submitted_at=at,
        session_id=meta.session_id or NO_SESSION,
        correlation_id=meta.correlation_id or meta.command_id,
        traceparent=tracing.child(meta.traceparent or None),
        payload=msgspec.Raw(encoder.encode(payload)),
        caused_by=meta.command_id,
    )


class PolicyJob:
    linger = 0.0  # each event is a command of its own: waiting would only delay it
    batch = BATCH

    def __init__(
        self, policy: Policy, registry: Registry, js: JetStreamContext, progress: KeyValue
    ) -> None:
        self.policy = policy
        self.name = f"policy.{policy.name}"
        self.subjects = registry.event_filter(policy.events)
        self._registry = registry
        self._js = js
        self._progress = progress

    async def start(self) -> int:
        try:
            entry = await self._progress.get(self.name)
        except (KeyNotFoundError, KeyDeletedError):
            return 0
        return progress_decoder.decode(entry.value or b"").position

    async def handle(self, events: list[StoredEvent]) -> None:
        for stored in events:
            if not isinstance(stored.event, self.policy.events):
                continue
            for issue in self.policy.react(stored.event, stored.meta):
                command = issued_command(self.policy, self._registry, issue, stored.meta)
                await self._js.publish(
                    command_subject(command.type, command.command_id),
                    encoder.encode(command),
                    headers={"Nats-Msg-Id": command.command_id},
                )

    async def save(self, position: int) -> None:
        await save_position(self._progress, self.name, position)

    async def finish(self) -> None:
        return None

    def restart(self) -> asyncio.Event | None:
        return None


class Runner:
    """Runs one job while holding its lease; stands by otherwise."""

    def __init__(
        self,
        job: Job,
        js: JetStreamContext,
        registry: Registry,
        leases: KeyValue,
        *,
        holder: str | None = None,
        gate: Gate | None = None,
        failures: Failures | None = None,
    ) -> None:
        self.job = job
        self._js = js
        self._registry = registry
        self.lease = Lease(leases, job.name, holder)
        self._gate = gate
        self._failures = failures
        self.active = False  # holding the lease and reading
        self._has_read = False  # this run of the job has read from EVENTS
        self._position = 0  # the last this run of the job started at or stored
        self._moved = False  # this run has stored a position

    async def _acquire(self) -> bool:
        if self._gate is None:
            return await self.lease.acquire()
        if not self._gate.reserve(self.job.name):
            return False  # this reactor holds its share already
        try:
            taken = await self.lease.acquire()
        finally:
            if not self.lease.held:
                self._gate.drop(self.job.name)
        return taken

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._has_read = False
            try:
                if await self._acquire():
                    log.info("%s: running here", self.job.name)
                    await self._run_held(stop)
                    failures = 0
                else:
                    await pause(stop, RETRY_EVERY)
            except Superseded as exc:
                # Not an error: a runner that lost its lease unawares, or a rebuild's
                # catch-up, moved the job on. Start again from what is stored.
                log.warning("%s: %s; starting again from what is stored", self.job.name, exc)
            except (nats.errors.Error, TimeoutError) as exc:
                if stop.is_set():  # stopping with the server gone: its connection closed
                    log.debug("%s: stopped with %r", self.job.name, exc)
                    continue
                # An outage after the job had been reading is a new one: waited
                # out from the shortest pause again, not the last outage's longest.
                failures = 1 if self._has_read else failures + 1
                log.warning("%s: %s: %s; again shortly", self.job.name, type(exc).__name__, exc)
                await pause(stop, min(2.0 ** (failures - 1), 30.0))  # 1 s, 2 s, ... 30 s
            except Exception as exc:
                # A bug in the domain's code or a broken record: the job stops moving
                # (its position stays), and says so; nothing is skipped. An event of a
                # newer release (TooNew, a rolling upgrade) the same: its lease goes
                # (below) to a reactor that can read it, and this one asks again later.
                failures += 1
                again = min(2.0**failures, 30.0)
                if isinstance(exc, TooNew):
                    log.warning("%s: %s; left to a reactor that knows it", self.job.name, exc)
                else:
                    log.exception("%s failed; trying again in %.0fs", self.job.name, again)
                    if self._failures is not None:
                        await self._failures.record(self.job.name, exc, self._position)
                await pause(stop, again)
            finally:
                self.active = False
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await self.lease.release()
                if self._gate is not None:
                    self._gate.drop(self.job.name)

    async def _run_held(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        position = self._position = await self.job.start()
        self._moved = False
        restart = self.job.restart()
        reader = EventReader(
            self._js, self._registry, self.job.subjects, position, batch=self.job.batch
        )
        renew_at = loop.time() + RENEW_EVERY
        self.active = True
        caught_up = False
        try:
            while not stop.is_set() and not (restart is not None and restart.is_set()):
                if caught_up and self.job.linger:
                    await asyncio.sleep(self.job.linger)
                if loop.time() >= renew_at:
                    if self._gate is not None and self._gate.over(self.job.name):
                        log.info("%s: over this reactor's share; handing it over", self.job.name)
                        return
                    if not await self.lease.renew():
                        log.warning("%s: lease lost; standing by", self.job.name)
                        return
                    renew_at = loop.time() + RENEW_EVERY
                batch = await reader.next_batch(wait=IDLE_WAIT)
                self._has_read = True
                if batch.last_seq is None:
                    # Nothing came: if the reader's consumer says all is read, the
                    # position moves to the stream's end (events of other jobs).
                    end = await reader.read_to_end()
                    if end is not None and end > position:
                        position = end
                        await self._save(position)
                    continue
                if batch.events:
                    await self.job.handle(batch.events)
                assert batch.last_seq is not None
                position = batch.last_seq
                caught_up = batch.caught_up
                await self._save(position)
        finally:
            await reader.close()
            await self.job.finish()

    async def _save(self, position: int) -> None:
        await self.job.save(position)
        self._position = position
        if not self._moved:
            self._moved = True
            if self._failures is not None:  # this job is not stuck (any more), whoever was
                await self._failures.clear(self.job.name)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile (every loop of the reactor's)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
