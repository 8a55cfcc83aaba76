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


def request_ids(given_id: bytes, traceparent: bytes) -> tuple[str, str | None]:
    """The request's id (the client's valid X-Request-ID, else a new one) and its trace."""
    given = given_id.decode("latin-1")
    request_id = given if VALID.match(given) else uuid.uuid4().hex
    return request_id, tracing.parse(traceparent.decode("latin-1"))
