"""W3C trace context (https://www.w3.org/TR/trace-context/): one user action followed across
the API, the reactor, the event store and the notice.

A `traceparent` is `00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>`. The
API takes a valid one from the request (else starts a trace); the command carries it;
each hop after it (the command's events, its notice, a policy's commands) carries the
same trace id with a span id of its own, in a `traceparent` header. Logs and
`task watch` show the trace id, so one action can be found in every process's output.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

HEADER: Final = "traceparent"
PATTERN: Final = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
_VALID: Final = re.compile(PATTERN)
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


def parse(header: str | None) -> str | None:
    """A traceparent as sent, if it is a valid version-00 one (else None: start a new trace)."""
    if header is None:
        return None
    value = header.strip().lower()
    if not _VALID.match(value):
        return None
    _, trace, span, _ = value.split("-")
    return None if trace == _ZERO_TRACE or span == _ZERO_SPAN else value


def child(parent: str | None) -> str:
    """The traceparent of the next hop: the parent's trace with a new span (or a new trace)."""
    if parent is None or not _VALID.match(parent):
        return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    _, trace, _, flags = parent.split("-")
    return f"00-{trace}-{secrets.token_hex(8)}-{flags}"


def trace_id(traceparent: str | None) -> str:
    """The trace id of a traceparent ("" without one)."""
    return traceparent.split("-")[1] if traceparent and _VALID.match(traceparent) else ""
