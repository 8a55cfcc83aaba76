"""Each request's id: `X-Request-ID` echoed (or one made up), and bound to its log lines.

A client's `X-Request-ID` (up to 128 of `[A-Za-z0-9._:-]`) is answered in the
response's `X-Request-ID`; without a valid one the API makes one. It is also
the correlation id of the command the request submits, and, with the trace id
of its `traceparent`, on every log line written while the request is handled.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

from contracts import tracing

VALID: Final = re.compile(r"^[\w.:-]{1,128}$", re.ASCII)


def request_ids(given_id: bytes, traceparent: bytes) -> tuple[str | None, str, str | None]:
    """The client's X-Request-ID if it is valid (else None), the request's id (that one,
    else a new one) and its trace."""
    given = given_id.decode("latin-1")
    client_id = given if VALID.match(given) else None
    return client_id, client_id or uuid.uuid4().hex, tracing.parse(traceparent.decode("latin-1"))
