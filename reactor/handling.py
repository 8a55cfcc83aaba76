"""One command, start to outcome: reserve -> load -> decide -> append -> inline views -> notice.

- Unique values are reserved (`reactor.reservations`) for the aggregate
  before it decides; a value held by another aggregate is the domain's
  rejection, and a claim made by a command that is then refused is released.
- A creating command's aggregate is new (its id derives from the command),
  so it is not loaded: the append expects sequence 0. Any other is loaded
  from its subject. A `Conflict` on append (the aggregate moved on, or this
  decision is stored already) reloads and decides again.
- A command whose id is already among the aggregate's causations was
  handled before (a redelivery after a crash): it appends nothing, and its
  outcome is told again from the events it appended then.
- Inline views get every event of the aggregate of their types: each record
  takes the events past its checkpoint, so a view write that a crash or a
  racing command left behind is made good here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from contracts.commands import Command
from contracts.domain import CommandSpec, EventMeta, Rejection
from contracts.events import StoredEvent
from contracts.notices import Notice
from contracts.registry import Registry
from contracts.views import ViewBuckets
from reactor import notices
from reactor.eventstore import Conflict, EventStore
from reactor.reservations import Claim, Reservations
from reactor.views import ViewWriter

MAX_CONFLICTS: Final = 20
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


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
        writer: ViewWriter | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._registry = registry
        self._store = store
        self._reservations = reservations
        self._views = views
        self._writer = writer or ViewWriter()
        self._clock = clock
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}

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
        except msgspec.DecodeError as exc:
            raise Poison(f"{command.type} payload: {exc}") from None

    async def handle(self, command: Command) -> Notice:
        started = self._clock()
        spec, payload = self.payload(command)
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

        history = (
            [] if spec.creates else await self._store.load(spec.aggregate, command.aggregate_id)
        )
        for _ in range(MAX_CONFLICTS):
            position = history[-1].meta.seq if history else 0
            mine = [e for e in history if e.meta.command_id == command.command_id]
            if mine:
                break  # handled before: tell the same outcome
            state = aggregate.initial
            for stored in history:
                state = aggregate.evolve(state, stored.event, stored.meta)
            decision = aggregate.decide(state, payload)
            if isinstance(decision, Rejection):
                if claim is not None and claim.new:
                    await self._reservations.release(claim)
                return notices.failed(command, self._clock(), decision.problem(), position=position)
            if not decision:
                break  # nothing to change
            try:
                mine = await self._append(command, spec, decision, expected=position)
            except Conflict:
                history = await self._store.load(spec.aggregate, command.aggregate_id)
                continue
            history = [*history, *mine]
            break
        else:
            raise RuntimeError(f"aggregate {command.aggregate_id} kept changing under us")
        appended = self._clock()

        resource = await self._inline_views(spec, history, mine, fresh=len(history) == len(mine))
        decided = self._clock()
        position = mine[-1].meta.seq if mine else (history[-1].meta.seq if history else 0)
        timings = {
            "started": started.timestamp(),
            "appended": appended.timestamp(),
            "decided": decided.timestamp(),
            "sent": self._clock().timestamp(),
        }
        if resource is None:
            return notices.succeeded(command, decided, position=position, timings=timings)
        key, state = resource
        view = self._registry.views[spec.resource or ""]
        return notices.succeeded(
            command,
            decided,
            position=position,
            resource=state,
            resource_url=self._registry.resource_url(view.name, key),
            page=view.page(state) if view.page is not None and state is not None else None,
            timings=timings,
        )

    async def _append(
        self, command: Command, spec: CommandSpec, events: Sequence[msgspec.Struct], expected: int
    ) -> list[StoredEvent]:
        at = self._clock()
        first, _ = await self._store.append(
            command, spec.aggregate, events, expected=expected, at=at
        )
        return [
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
                ),
            )
            for i, event in enumerate(events)
        ]

    async def _inline_views(
        self,
        spec: CommandSpec,
        history: list[StoredEvent],
        mine: list[StoredEvent],
        *,
        fresh: bool,
    ) -> tuple[str, Any] | None:
        """Bring the inline views this command's events touch up to date; the resource record."""
        buckets = self._views()
        resource: tuple[str, Any] | None = None
        touched = {type(e.event).__name__ for e in mine}
        for view in self._registry.inline_views(
            touched or {type(e.event).__name__ for e in history}
        ):
            states = await self._writer.apply(buckets, view, history, fresh=fresh)
            if view.name == spec.resource:
                last = next(
                    (e for e in reversed(history) if isinstance(e.event, view.events)), None
                )
                if last is not None:
                    key = view.key(last.event, last.meta)
                    resource = (key, states.get(key))
        return resource
