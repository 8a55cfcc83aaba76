"""Caps on open event streams, per API process and per browser session.

sse-starlette has no connection cap (PITFALLS.md); without one a client can
hold sockets and memory without bound. Over the cap the request is refused
at once (429 for one session's excess, 503 for the process's) with
Retry-After, instead of being left to hang.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from api.problems import HTTPProblem


class StreamLimits:
    def __init__(self, max_open: int, max_per_session: int) -> None:
        self.max_open = max_open
        self.max_per_session = max_per_session
        self.open = 0
        self._per_session: Counter[str] = Counter()

    def acquire(self, session_id: str) -> None:
        """Take a slot for a stream, or raise the problem to answer with."""
        if self.open >= self.max_open:
            raise HTTPProblem(
                503,
                "Too many streams",
                f"This server holds its maximum of {self.max_open} event streams.",
                headers={"Retry-After": "5"},
            )
        if self._per_session[session_id] >= self.max_per_session:
            raise HTTPProblem(
                429,
                "Too many streams",
                f"This session already has {self.max_per_session} event streams open.",
                headers={"Retry-After": "5"},
            )
        self.open += 1
        self._per_session[session_id] += 1

    def release(self, session_id: str) -> None:
        self.open -= 1
        self._per_session[session_id] -= 1
        if self._per_session[session_id] <= 0:
            del self._per_session[session_id]


class LimitedEventSource(EventSourceResponse):
    """An event stream holding a slot of `limits` until the response is over.

    The slot is released, and `on_close` awaited, when the ASGI call ends,
    however it ends, even if the body generator never started (a client gone
    before the first byte).
    """

    def __init__(
        self,
        *args: object,
        limits: StreamLimits,
        session_id: str,
        on_close: Callable[[], Awaitable[None]] | None = None,
        **kwargs: object,
    ) -> None:
        limits.acquire(session_id)
        self._limits = limits
        self._session_id = session_id
        self._on_close = on_close
        try:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        except BaseException:
            limits.release(session_id)
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._limits.release(self._session_id)
            if self._on_close is not None:
                await self._on_close()
