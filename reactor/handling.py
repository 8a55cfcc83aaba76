"""One command, start to outcome: reserve -> load -> decide -> append -> inline views -> notice.

- Unique values are reserved (`reactor.reservations`) for the aggregate
  before it decides; a value held by another aggregate is the domain's
  rejection, and a claim made by a command that is then refused is released.
- Commands on one aggregate take turns within this process (`Turns`): they
  would only make each other's appends conflict. Other processes are kept
  honest by the expected sequence, as before.
- A creating command's aggregate is new (its id derives from the command),
  so it is not loaded: the append expects sequence 0. Any other is taken
  from what this process remembers of it (`Remembered`) or loaded from its
  subject. A `Conflict` on append (the aggregate moved on, or this decision
  is stored already) reloads and decides again.
- A refusal or a no-op is checked by no append, so it is decided on the
  store's latest: one decided on what this process remembers loads first,
  and on a replicated store one decided on a load takes the events the
  stream's leader has past it (a replica answering the load may lag). A
  conflict reloads to the leader's latest for the same reason.
- A command whose id is already among the aggregate's causations was
  handled before (a redelivery after a crash): it appends nothing, and its
  outcome is told again from the events it appended then (deciding it again
  on the state before them tells a recorded refusal from a success: decide
  is pure).
- A command given up on (dead-lettered) gives back the value it reserved if
  its aggregate never came to be (`abandon`); an aggregate that exists keeps
  it, as its events stand.
- A refusal may record events of its own (`Rejection.record`): they are
  appended like any decision, and the notice is still `failed`.
- Inline views get the aggregate's events of each record the command's
  events change (its resource record alone, for a command that changed
  nothing): each takes the events past its checkpoint, so a view write that a
  crash or a racing command left behind on it is made good here. A record the
  command does not change is left alone: a video's viewing writes its own
  viewer's record, not every past viewer's.
- What is remembered of an aggregate is its `History`, indexed by command and
  by view key (`reactor.history`): a command finds its own events and those of
  its records without going through the rest, so what it costs does not grow
  with what the aggregate has seen (`python -m bench.hot`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import msgspec

from contracts.commands import Command
from contracts.domain import Aggregate, CommandSpec, EventMeta, Rejection, View
from contracts.events import StoredEvent
from contracts.notices import Notice
from contracts.registry import Registry
from contracts.topology import event_subject
from contracts.views import ViewBuckets
from reactor import notices
from reactor.eventstore import Conflict, EventStore
from reactor.history import History
from reactor.reservations import Claim, Reservations
from reactor.views import ViewWriter, key_of

MAX_CONFLICTS: Final = 20
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Loaded(NamedTuple):
    """An aggregate as loaded: every event (indexed), and the state they fold to."""

    history: History
    state: Any

    @property
    def position(self) -> int:
        """The sequence of its last event (0: none); an append expects it."""
        return self.history.position

    def plus(self, aggregate: Aggregate, events: Sequence[StoredEvent]) -> Loaded:
        """The aggregate once `events` (the next in its stream) are added."""
        return Loaded(self.history.plus(events), fold(aggregate, self.state, events))


def fold(aggregate: Aggregate, state: Any, events: Sequence[StoredEvent]) -> Any:
    for stored in events:
        state = aggregate.evolve(state, stored.event, stored.meta)
    return state


class Remembered:
    """The aggregates this process handled last (a bounded LRU), by subject.

    What it holds may be behind the store (another reactor appended since):
    an append decided on it is checked by the expected sequence (a conflict
    loads afresh), and a refusal or a no-op decided on it is checked by
    loading before it is believed. So a hot aggregate (an account charged
    over and over) is not read and folded again for every command.

    Bounded by aggregates and by their events all told (about 1.2 KB an event
    with its indexes: 200,000 events are some 240 MB): a thousand accounts of
    50,000 entries each would have held fifty million. The aggregate just put
    is kept whatever its size.
    """

    def __init__(self, size: int = 1000, events: int = 200_000) -> None:
        self._size = size
        self._max_events = events
        self._events = 0
        self._known: OrderedDict[str, Loaded] = OrderedDict()

    def get(self, subject: str) -> Loaded | None:
        loaded = self._known.get(subject)
        if loaded is not None:
            self._known.move_to_end(subject)
        return loaded

    def put(self, subject: str, loaded: Loaded) -> None:
        was = self._known.get(subject)
        self._events += len(loaded.history) - (0 if was is None else len(was.history))
        self._known[subject] = loaded
        self._known.move_to_end(subject)
        while len(self._known) > 1 and (
            len(self._known) > self._size or self._events > self._max_events
        ):
            _, evicted = self._known.popitem(last=False)
            self._events -= len(evicted.history)

    @property
    def events(self) -> int:
        """The events of every aggregate held."""
        return self._events


class Turns:
    """One command at a time per aggregate, in this process; a lock exists while it is wanted."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def of(self, subject: str) -> AsyncIterator[None]:
        lock, waiting = self._locks.get(subject, (asyncio.Lock(), 0))
        self._locks[subject] = (lock, waiting + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiting = self._locks[subject]
            if waiting == 1:
                del self._locks[subject]
            else:
                self._locks[subject] = (lock, waiting - 1)


class Poison(ValueError):
    """Not a command this reactor can handle: unknown type or a payload that breaks its schema."""


class CommandHandler:
    def __init__(
        self,
        registry: Registry,
        store: EventStore,
        reservations: Reservations,
        views: Callable[[], ViewBuckets],
        *,
        building: Callable[[], ViewBuckets | None] = lambda: None,
        writer: ViewWriter | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._registry = registry
        self._store = store
        self._reservations = reservations
        self._views = views
        self._building = building
        self._writer = writer or ViewWriter()
        self._clock = clock
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}
        self._aggregates = Remembered()
        self._turns = Turns()

    def payload(self, command: Command) -> tuple[CommandSpec, Any]:
        """The command's spec and decoded payload, or Poison."""
        spec = self._registry.command(command.type)
        if spec is None:
            raise Poison(f"unknown command type {command.type!r}")
        decoder = self._decoders.get(spec.name)
        if decoder is None:
            decoder = self._decoders[spec.name] = msgspec.json.Decoder(spec.type)
        try:
            return spec, decoder.decode(command.payload)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise Poison(f"{command.type} payload: {exc}") from None

    async def handle(self, command: Command) -> Notice:
        spec, payload = self.payload(command)
        async with self._turns.of(event_subject(spec.aggregate, command.aggregate_id)):
            return await self._handle(command, spec, payload)

    async def _handle(self, command: Command, spec: CommandSpec, payload: Any) -> Notice:
        started = self._clock()
        aggregate = self._registry.aggregates[spec.aggregate]

        claim: Claim | None = None
        if spec.unique is not None:
            claim = await self._reservations.claim(
                spec.unique.scope, spec.unique.value(payload), command.aggregate_id
            )
            if claim.owner != command.aggregate_id:
                return notices.failed(
                    command, self._clock(), spec.unique.rejection(payload).problem()
                )

        subject = event_subject(spec.aggregate, command.aggregate_id)
        if spec.creates:  # a new aggregate: nothing to load, the append expects 0
            loaded, remembered = Loaded(History(), aggregate.initial), False
        else:
            known = self._aggregates.get(subject)
            loaded, remembered = (
                (known, True) if known else (await self._load(spec, command.aggregate_id), False)
            )
        refused: Rejection | None = None
        appending: datetime | None = None
        last = 0  # the decision's last event (its keyed events are not the aggregate's)
        for _ in range(MAX_CONFLICTS):
            history = loaded.history
            mine = history.of_command(command.command_id)
            if mine:  # handled before: tell the same outcome
                refused = self._refusal_recorded(aggregate, history, mine[0], payload)
                break
            decision = aggregate.decide(loaded.state, payload)
            if isinstance(decision, Rejection) or not decision:
                # An append is checked by the store; a refusal or a no-op is not, so
                # it must stand on the latest events. What this process remembers may
                # be behind (load), and so may a replica that answered a load.
                if remembered:
                    loaded, remembered = await self._load(spec, command.aggregate_id), False
                    continue
                missed = await self._store.missed(
                    spec.aggregate, command.aggregate_id, loaded.position
                )
                if missed:
                    loaded = loaded.plus(aggregate, missed)
                    continue
            if isinstance(decision, Rejection):
                if claim is not None and claim.new:
                    await self._reservations.release(claim)
                if not decision.record:
                    return notices.failed(
                        command, self._clock(), decision.problem(), position=loaded.position
                    )
                refused, decision = decision, list(decision.record)
            if not decision:
                break  # nothing to change
            appending = self._clock()  # decided: what is left is the append
            try:
                mine, last = await self._append(command, spec, decision, expected=loaded.position)
            except Conflict:
                # The store has moved on: decide again on its latest (a replica
                # as far behind as the load was would only conflict again).
                loaded, remembered, refused = (
                    await self._load(spec, command.aggregate_id, latest=True),
                    False,
                    None,
                )
                continue
            loaded = loaded.plus(aggregate, mine)
            break
        else:
            raise RuntimeError(f"aggregate {command.aggregate_id} kept changing under us")
        history = loaded.history
        self._aggregates.put(subject, loaded)
        appended = self._clock()

        resource = await self._inline_views(spec, history, mine)
        decided = self._clock()
        # A redelivered decision's keyed events are not in its history: its position is
        # then its own last event, which a client's `min_position` finds a little early.
        position = last or (mine[-1].meta.seq if mine else (history[-1].meta.seq if history else 0))
        timings = {
            "started": started.timestamp(),
            "appending": (appending or appended).timestamp(),
            "appended": appended.timestamp(),
            "decided": decided.timestamp(),
            "sent": self._clock().timestamp(),
        }
        if refused is not None:
            return notices.failed(
                command, decided, refused.problem(), position=position, timings=timings
            )
        if resource is None:
            return notices.succeeded(command, decided, position=position, timings=timings)
        key, state = resource
        view = self._registry.views[spec.resource or ""]
        return notices.succeeded(
            command,
            decided,
            position=position,
            resource=state,
            # A removed resource (a deleted post) has no URL to give.
            resource_url=None if state is None else self._registry.resource_url(view.name, key),
            page=view.page(state) if view.page is not None and state is not None else None,
            timings=timings,
        )

    @staticmethod
    def _refusal_recorded(
        aggregate: Aggregate, history: History, first_mine: StoredEvent, payload: Any
    ) -> Rejection | None:
        """The refusal a handled command recorded, if its events were one (else None)."""
        before = [e for e in history if e.meta.seq < first_mine.meta.seq]
        again = aggregate.decide(fold(aggregate, aggregate.initial, before), payload)
        return again if isinstance(again, Rejection) and again.record else None

    async def state(self, aggregate: str, aggregate_id: str) -> Any:
        """An aggregate's state as stored now (loaded, not remembered)."""
        found = self._registry.aggregates[aggregate]
        return fold(found, found.initial, await self._store.load_latest(aggregate, aggregate_id))

    async def abandon(self, command: Command) -> bool:
        """A command given up on: give back the value it reserved if its aggregate never
        came to be (no event of it is stored), so the value can be taken again.
        Whether it gave one back."""
        spec, payload = self.payload(command)
        if spec.unique is None:
            return False
        async with self._turns.of(event_subject(spec.aggregate, command.aggregate_id)):
            claim = await self._reservations.held(spec.unique.scope, spec.unique.value(payload))
            if claim is None or claim.owner != command.aggregate_id:
                return False
            if await self._store.load_latest(spec.aggregate, command.aggregate_id):
                return False  # it exists: the value is its own
            # False if it changed hands since it was read: not this command's to give.
            return await self._reservations.release(claim)

    async def took_effect(self, command: Command) -> bool:
        """Whether an event the command decided is stored (read from the stream's leader)."""
        spec, _ = self.payload(command)
        history = await self._store.load_latest(spec.aggregate, command.aggregate_id)
        return any(e.meta.command_id == command.command_id for e in history)

    async def _load(self, spec: CommandSpec, aggregate_id: str, *, latest: bool = False) -> Loaded:
        """`latest`: what the stream's leader has, not what a replica answered."""
        aggregate = self._registry.aggregates[spec.aggregate]
        load = self._store.load_latest if latest else self._store.load
        history = await load(spec.aggregate, aggregate_id)
        return Loaded(History(history), fold(aggregate, aggregate.initial, history))

    async def _append(
        self, command: Command, spec: CommandSpec, events: Sequence[msgspec.Struct], expected: int
    ) -> tuple[list[StoredEvent], int]:
        """Append a decision; its events of the aggregate's own, and the last sequence of all.

        Keyed events (stored by key, for aggregators) are part of the batch but
        not of the aggregate's history: a reload by its subject does not see them.
        """
        at = self._clock()
        first, last = await self._store.append(
            command, spec.aggregate, events, expected=expected, at=at
        )
        own = [
            StoredEvent(
                event,
                EventMeta(
                    aggregate=spec.aggregate,
                    aggregate_id=command.aggregate_id,
                    seq=first + i,
                    at=at,
                    type=type(event).__name__,
                    command_id=command.command_id,
                    correlation_id=command.correlation_id,
                    session_id=command.session_id,
                    traceparent=command.traceparent or "",
                ),
            )
            for i, event in enumerate(events)
            if self._registry.key_of(event) is None
        ]
        return own, last

    async def _inline_views(
        self,
        spec: CommandSpec,
        history: History,
        mine: list[StoredEvent],
    ) -> tuple[str, Any] | None:
        """Bring up to date the inline views' records this command's events change (its
        resource record alone, for a command that changed nothing); the resource record.

        While a rebuild builds the next version, into it too (read first: its fold may
        or may not have come this far), so that it holds this command at the switch."""
        buckets, building = self._views(), self._building()
        named = self._registry.views.get(spec.resource or "")
        ours = mine[0].meta.command_id if mine else None
        if mine:
            views = self._registry.inline_views({type(e.event).__name__ for e in mine})
        else:
            views = [named] if named is not None and named.inline else []

        async def bring(view: View) -> tuple[str, Any] | None:
            """The view's records the command changes, up to date; its resource's state."""
            latest = None  # the resource's key: its view's record the last event changed
            if view.name == spec.resource:
                last = next(
                    (e for e in reversed(history) if isinstance(e.event, view.events)), None
                )
                latest = None if last is None else key_of(view, last)
            if mine:
                keys: Collection[str] = self._writer.keys_of(view, mine).keys()
            else:  # a no-op: its resource's record alone
                keys = [] if latest is None else [latest]
            groups = history.by_key(view, keys, key_of)
            # A record whose first event is this command's is most likely new: created
            # without a read first (a new viewer's, a ledger entry's).
            fresh = [k for k, group in groups.items() if group[0].meta.command_id == ours]
            states = await self._writer.apply_groups(buckets, view, groups, fresh=fresh)
            if building is not None and building.version != buckets.version:
                await self._writer.apply_groups(building, view, groups)
            return None if latest is None else (latest, states.get(latest))

        if len(views) == 1:  # the usual case: no task to run it in
            return await bring(views[0])
        # Each view is its own bucket: their writes go out together, and all are done
        # (or failed) before the command is: none goes on under the next one.
        brought = await asyncio.gather(*(bring(view) for view in views), return_exceptions=True)
        resource: tuple[str, Any] | None = None
        for outcome in brought:
            if isinstance(outcome, BaseException):
                raise outcome
            resource = resource or outcome
        return resource
