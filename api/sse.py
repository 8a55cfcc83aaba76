"""Notice -> Server-Sent Event: pure formatting, no transport."""

from __future__ import annotations

from datetime import UTC, datetime

from sse_starlette import ServerSentEvent

from api.problems import UNAVAILABLE
from contracts.commands import encoder
from contracts.lookups import StoredNotice

# Plain LF line endings: what `curl -N` users and grep expect (SSE allows any).
SEP = "\n"


def notice_event(stored: StoredNotice, event_id: str) -> ServerSentEvent:
    """`event: succeeded|failed`, the notice as `data:`, its (opaque) position as `id:`."""
    return ServerSentEvent(
        data=encoder.encode(stored.notice).decode(),
        event=stored.notice.status,
        id=event_id,
        sep=SEP,
    )


def ping_comment() -> bytes:
    """A keep-alive comment, sent while a stream has nothing to say."""
    return ServerSentEvent(comment=f"ping - {datetime.now(UTC)}", sep=SEP).encode()


def timeout_event(command_id: str, status_url: str) -> ServerSentEvent:
    """Nothing arrived in time: where to look later."""
    return ServerSentEvent(
        data=encoder.encode({"command_id": command_id, "status_url": status_url}).decode(),
        event="timeout",
        sep=SEP,
    )


def hello_event(retry_ms: int) -> ServerSentEvent:
    """The first bytes of every stream: a comment and the reconnect delay."""
    return ServerSentEvent(comment="stream open", retry=retry_ms, sep=SEP)


def connected_event(event_id: str) -> ServerSentEvent:
    """A session stream's first event: its id is where a reconnect resumes from."""
    return ServerSentEvent(data="{}", event="connected", id=event_id, sep=SEP)


def reset_event(event_id: str, reason: str) -> ServerSentEvent:
    """The cursor could not be resumed: re-sync from the status endpoints, go on from here."""
    return ServerSentEvent(
        data=encoder.encode({"reason": reason}).decode(), event="reset", id=event_id, sep=SEP
    )


def unavailable_event(retry_ms: int) -> ServerSentEvent:
    """NATS is away: the stream ends after this and EventSource comes back after `retry`."""
    return ServerSentEvent(
        data=encoder.encode(UNAVAILABLE).decode(), event="unavailable", retry=retry_ms, sep=SEP
    )
