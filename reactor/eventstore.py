"""The event store on the EVENTS stream: load an aggregate, append a decision.

- An aggregate's events live on one subject, `ev.<aggregate>.<id>`. Loading
  reads that subject alone with batched direct gets (ADR-31: up to 256 events
  a request, `next_by_subj`), never the whole stream.
- Any replica answers a direct get, and a follower may not have applied
  the last events yet (under load it is often a round behind). A load that
  only feeds an append is checked by the append's guard; one that a
  refusal or a no-op stands on is not, so on a replicated stream `missed`
  asks the stream's leader (`STREAM.MSG.GET`, which only it answers) for
  the aggregate's last sequence, and the events past the load.
- Appending is optimistic: `Nats-Expected-Last-Subject-Sequence` = the
  sequence of the last event the decision was made on (0 for a new
  aggregate). A decision of one event is one publish; of several, one atomic
  batch (`reactor.batch`): all stored or none.
- Each event's `Nats-Msg-Id` is `<command id>:<n>`, so a redelivered command's
  append is dropped by the server within the duplicate window; after it, the
  expected-sequence check refuses it. Either way the caller sees `Conflict`,
  reloads, and finds the command among the aggregate's causations: handled.
- A keyed event is published to `evk.<aggregate>.<key>` and stored by the
  server at `ev.<aggregate>.<partition>.<key>` (subject transform). Keyed
  subjects are shared by every decision, so they carry no guard: the
  decision's first event, its aggregate's own, does, for the whole batch
  (it is stored all or none). A batch holds at most MAX_DECISION events.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Final, NamedTuple

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg
from nats.js.errors import BadRequestError, NotFoundError

from contracts.commands import Command, encoder
from contracts.events import StoredEvent, event_headers, read_event
from contracts.registry import Registry
from contracts.topology import EVENTS_STREAM, event_subject, keyed_subject
from reactor.batch import BatchRejected, Message, publish_atomic

EXPECTED_SUBJECT_SEQ: Final = "Nats-Expected-Last-Subject-Sequence"
DIRECT_BATCH: Final = 256
MAX_DECISION: Final = 1000  # the server's limit on an atomic batch (err 10199 above it)
KEY: Final = re.compile(r"^[0-9A-Za-z_-]{1,64}$")  # one subject token, one KV key
# Wrong last sequence (one publish; a batch), and a batch holding a message id
# already stored: all mean "the aggregate moved on, or this was appended".
CONFLICT_CODES: Final = frozenset({10071, 10164, 10201})


class Conflict(Exception):
    """The aggregate changed since it was loaded (or this decision is stored already)."""


class Appended(NamedTuple):
    first_seq: int
    last_seq: int


class _DirectRequest(msgspec.Struct, omit_defaults=True):
    seq: int
    next_by_subj: str
    batch: int


class EventStore:
    def __init__(
        self, nc: Client, registry: Registry, timeout: float = 5.0, *, replicated: bool = False
    ) -> None:
        """`replicated`: EVENTS is kept by more than one server (direct gets may lag);
        `reactor.main.follow_replicas` keeps it true to the stream while a reactor runs."""
        self._nc = nc
        self._registry = registry
        self._timeout = timeout
        self.replicated = replicated
        self._direct_subject = f"$JS.API.DIRECT.GET.{EVENTS_STREAM}"

    async def load(self, aggregate: str, aggregate_id: str) -> list[StoredEvent]:
        """Every event of one aggregate, in order (batched direct gets on its subject)."""
        subject = event_subject(aggregate, aggregate_id)
        events: list[StoredEvent] = []
        seq = 1
        while True:
            got, more = await self._direct_batch(subject, seq)
            events.extend(got)
            if not more or not got:
                return events
            seq = got[-1].meta.seq + 1

    async def load_latest(self, aggregate: str, aggregate_id: str) -> list[StoredEvent]:
        """Every event of one aggregate as the stream's leader has it now."""
        events = await self.load(aggregate, aggregate_id)
        position = events[-1].meta.seq if events else 0
        return events + await self.missed(aggregate, aggregate_id, position)

    async def missed(self, aggregate: str, aggregate_id: str, position: int) -> list[StoredEvent]:
        """The aggregate's events past `position` (a load's last) that the stream's leader
        holds and the replica that answered the load did not yet; none unless replicated."""
        if not self.replicated:
            return []
        subject = event_subject(aggregate, aggregate_id)
        js = self._nc.jetstream(timeout=self._timeout)
        try:
            last = _seq(await js.get_msg(EVENTS_STREAM, subject=subject))
        except NotFoundError:
            return []
        events: list[StoredEvent] = []
        seq = position + 1
        while seq <= last:  # one message a request: the leader answers no batches
            msg = await js.get_msg(EVENTS_STREAM, seq=seq, subject=subject, next=True)
            seq = _seq(msg)
            events.append(read_event(self._registry, subject, seq, msg.headers, msg.data or b""))
            seq += 1
        return events

    async def _direct_batch(self, subject: str, seq: int) -> tuple[list[StoredEvent], bool]:
        """Up to DIRECT_BATCH events on `subject` from `seq`; and whether more are left.

        The replies are gathered by the subscription's callback and the batch's end
        resolves one future: `next_msg` cost a task and a timer a message (nats-py),
        which a load paid per event."""
        ended: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        replies: list[Msg] = []

        async def arrived(msg: Msg) -> None:
            if msg.headers is not None and "Status" in msg.headers:  # an end, or a refusal
                if not ended.done():
                    ended.set_result(msg.headers)
            else:
                replies.append(msg)

        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, cb=arrived)
        try:
            request = encoder.encode(_DirectRequest(seq, subject, DIRECT_BATCH))
            await self._nc.publish(self._direct_subject, request, reply=inbox)
            try:
                end = await asyncio.wait_for(ended, self._timeout)
            except TimeoutError:
                raise nats.errors.TimeoutError from None
        finally:
            await sub.unsubscribe()
        status = end["Status"]
        if status == "404":
            return [], False  # nothing (more) on the subject
        if status != "204":  # not an end: an aggregate is never taken as empty
            raise _refused(status, end.get("Description", ""))
        events = []
        for msg in replies:
            headers = msg.headers or {}
            stored_seq = int(headers["Nats-Sequence"])
            events.append(
                read_event(self._registry, headers["Nats-Subject"], stored_seq, headers, msg.data)
            )
        pending = int((replies[-1].headers or {}).get("Nats-Num-Pending", "0")) if replies else 0
        return events, pending > 0

    async def append(
        self,
        command: Command,
        aggregate: str,
        events: Sequence[msgspec.Struct],
        *,
        expected: int,
        at: datetime,
    ) -> Appended:
        """Store the events of one decision, all or none, if the aggregate is at `expected`."""
        subjects = self.subjects(aggregate, command.aggregate_id, events)
        messages = [
            Message(subject, encoder.encode(e), self._headers(command, e, at, n))
            for n, (subject, e) in enumerate(zip(subjects, events, strict=True), start=1)
        ]
        subject = subjects[0]
        guard = {EXPECTED_SUBJECT_SEQ: str(expected)}
        if len(messages) == 1:
            try:
                ack = await self._nc.jetstream().publish(
                    subject,
                    messages[0].data,
                    timeout=self._timeout,
                    stream=EVENTS_STREAM,
                    headers={**messages[0].headers, **guard},
                )
            except BadRequestError as exc:
                if exc.err_code in CONFLICT_CODES:
                    raise Conflict(str(exc)) from None
                raise
            if ack.duplicate:
                raise Conflict("appended already (duplicate message id)")
            return Appended(ack.seq, ack.seq)
        try:
            batch = await publish_atomic(
                self._nc, messages, first_headers=guard, timeout=self._timeout
            )
        except BatchRejected as exc:
            if exc.err_code in CONFLICT_CODES:
                raise Conflict(str(exc)) from None
            raise
        return Appended(batch.seq - batch.size + 1, batch.seq)

    def subjects(
        self, aggregate: str, aggregate_id: str, events: Sequence[msgspec.Struct]
    ) -> list[str]:
        """Where each event of a decision is published (keyed ones by their key)."""
        if len(events) > MAX_DECISION:
            raise ValueError(f"a decision of {len(events)} events: at most {MAX_DECISION}")
        own = event_subject(aggregate, aggregate_id)
        subjects = []
        for event in events:
            key = self._registry.key_of(event)
            if key is None:
                subjects.append(own)
            elif not KEY.match(key):
                raise ValueError(f"{type(event).__name__}: key {key!r} is not {KEY.pattern}")
            else:
                subjects.append(keyed_subject(aggregate, key))
        if subjects and subjects[0] != own:
            # The expected-sequence guard rides on the first message: it must be
            # on the aggregate's own subject, not on a key shared by every batch.
            raise ValueError("a decision with keyed events starts with an event of its own")
        return subjects

    def _headers(
        self, command: Command, event: msgspec.Struct, at: datetime, n: int
    ) -> dict[str, str]:
        name = type(event).__name__
        event_type = self._registry.event(name)
        if event_type is None:
            raise TypeError(f"{name} is not a registered event")
        return event_headers(command, name, event_type.spec.version, at, n)


def _seq(msg: RawStreamMsg) -> int:
    if msg.seq is None:
        raise ValueError(f"{EVENTS_STREAM}: a message got without its sequence")
    return msg.seq


def _refused(status: str, description: str) -> nats.errors.Error:
    """A direct get answered neither with events nor with their end: no server holds the
    stream (503, no responders: waited out as an outage), or it refused the request."""
    if status == "503":
        return nats.errors.NoRespondersError()
    return nats.errors.Error(f"direct get of EVENTS answered {status} {description}".rstrip())
