"""A domain's own tests, pure: given events, when a command, then events or a rejection.

No NATS and no clock: an event's metadata is made up here, as the store would
write it (`meta`), and an aggregate's state is what its `evolve` makes of the
events given (`given`). README "Add a domain".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from contracts.domain import EventMeta

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def meta(
    seq: int = 1,
    event: object = None,
    aggregate_id: str = "a1",
    *,
    at: datetime = T0,
    aggregate: str = "x",
) -> EventMeta:
    """What the store records with an event: its sequence, aggregate and time."""
    kind = "Event" if event is None else type(event).__name__
    return EventMeta(aggregate, aggregate_id, seq, at, kind, "c", "c", "s")


def given(
    evolve: Callable[[Any, Any, EventMeta], Any],
    *events: object,
    aggregate_id: str = "a1",
    initial: Any = None,
) -> Any:
    """The state `evolve` makes of `events`, in order (sequences 1, 2, ...)."""
    state = initial
    for seq, event in enumerate(events, start=1):
        state = evolve(state, event, meta(seq, event, aggregate_id))
    return state
