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

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import tracing
from contracts.logs import bound

VALID: Final = re.compile(r"^[\w.:-]{1,128}$", re.ASCII)


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if VALID.match(given) else uuid.uuid4().hex
        trace = tracing.parse(headers.get(b"traceparent", b"").decode("latin-1"))
        state = scope.setdefault("state", {})
        state["request_id"], state["trace"] = request_id, trace

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        with bound(request_id=request_id, trace_id=tracing.trace_id(trace)):
            await self.app(scope, receive, with_id)
