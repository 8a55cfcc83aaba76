"""Events as stored in the EVENTS stream: the body is the event, the headers say the rest.

subject            ev.<aggregate>.<aggregate id>, or for a keyed event
                   ev.<aggregate>.<partition>.<key> (published to evk.<aggregate>.<key>)
Nats-Msg-Id        <command id>:<n>   (n-th event of the decision: a redelivery dedups)
Event-Type         LocationCreated
Event-Version      1                  (upcast on read when older than the schema)
Causation-Id       the command that decided it
Correlation-Id     the request it all started from
Session-Id         the browser session, for notices of follow-on commands
Occurred-At        when it was decided, ISO 8601 UTC
traceparent        W3C trace context: the command's trace, a span of its own
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

from contracts import tracing
from contracts.commands import Command
from contracts.domain import EventMeta
from contracts.registry import Registry

EVENT_TYPE: Final = "Event-Type"
EVENT_VERSION: Final = "Event-Version"
CAUSATION: Final = "Causation-Id"
CORRELATION: Final = "Correlation-Id"
SESSION: Final = "Session-Id"
OCCURRED: Final = "Occurred-At"
MSG_ID: Final = "Nats-Msg-Id"


class StoredEvent(NamedTuple):
    event: Any
    meta: EventMeta  # a keyed event's aggregate_id is its key
    partition: int | None = None  # a keyed event's partition (the server's partition())


class UnreadableEvent(ValueError):
    """A stored event this process cannot read (an unknown type or a broken body)."""


class TooNew(UnreadableEvent):
    """A stored event of a type, or a schema version, this process does not know: a newer
    process wrote it (a rolling upgrade). Not to be skipped: left to one that knows it."""


def event_msg_id(command_id: str, n: int) -> str:
    return f"{command_id}:{n}"


def event_headers(
    command: Command, type_name: str, version: int, at: datetime, n: int
) -> dict[str, str]:
    headers = {
        MSG_ID: event_msg_id(command.command_id, n),
        EVENT_TYPE: type_name,
        EVENT_VERSION: str(version),
        CAUSATION: command.command_id,
        CORRELATION: command.correlation_id,
        SESSION: command.session_id,
        OCCURRED: at.isoformat(),
    }
    if command.traceparent:
        headers[tracing.HEADER] = tracing.child(command.traceparent)
    return headers


def read_event(
    registry: Registry, subject: str, seq: int, headers: Mapping[str, str] | None, data: bytes
) -> StoredEvent:
    """The event and its meta from a stored message; UnreadableEvent if it cannot be read."""
    h = headers or {}
    name = h.get(EVENT_TYPE, "")
    event_type = registry.event(name)
    _, aggregate, aggregate_id = [*subject.split(".", 2), "", ""][:3]
    partition: int | None = None
    if "." in aggregate_id:  # keyed: <partition>.<key>
        number, aggregate_id = aggregate_id.split(".", 1)
        partition = int(number) if number.isdecimal() and number.isascii() else None
    if event_type is None:
        raise TooNew(f"event {seq} on {subject}: unknown type {name!r}")
    version = h.get(EVENT_VERSION, "1")
    if version.isdecimal() and int(version) > event_type.spec.version:
        raise TooNew(
            f"event {seq} on {subject}: {name} version {version}, "
            f"this process knows {event_type.spec.version}"
        )
    try:
        event = event_type.decode(data, int(version))
        meta = EventMeta(
            aggregate=aggregate,
            aggregate_id=aggregate_id,
            seq=seq,
            at=datetime.fromisoformat(h[OCCURRED]),
            type=name,
            command_id=h[CAUSATION],
            correlation_id=h.get(CORRELATION, h[CAUSATION]),
            session_id=h.get(SESSION, ""),
            traceparent=h.get(tracing.HEADER, ""),
        )
    except (ValueError, KeyError) as exc:  # msgspec errors are ValueErrors
        raise UnreadableEvent(f"event {seq} on {subject}: {exc}") from None
    return StoredEvent(event, meta, partition)
