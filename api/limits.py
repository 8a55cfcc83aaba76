"""Caps on open event streams and server-side waits, per API process, client and session.

sse-starlette has no connection cap (PITFALLS.md); without one a client can
hold sockets and memory without bound. Over the cap the request is refused
at once (429 for one session's excess, 503 for the process's) with
Retry-After, instead of being left to hang.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from starlette.requests import Request

from api.problems import HTTPProblem


class Holder(NamedTuple):
    """Who holds a slot: the browser session, and the client's address."""

    session: str
    client: str


def holder_of(request: Request) -> Holder:
    """The request's holder. The client is the peer's address, or, behind a proxy listed in
    TRUSTED_PROXIES, the address it forwarded (uvicorn's proxy headers middleware)."""
    client = request.client.host if request.client is not None else "unknown"
    return Holder(request.state.session_id, client)


class StreamLimits:
    """Open streams and server-side waits: per process, per client address, per session.

    Per session alone is not enough: a request without a cookie is a new
    session, so one client could take every slot of the process. Per client
    address, a client that does so only fills its own share.
    """

    def __init__(self, max_open: int, max_per_session: int, max_per_client: int) -> None:
        self.max_open = max_open
        self.max_per_session = max_per_session
        self.max_per_client = max_per_client
        self.open = 0
        self._per_session: Counter[str] = Counter()
        self._per_client: Counter[str] = Counter()

    def acquire(self, holder: Holder) -> None:
        """Take a slot for a stream, or raise the problem to answer with."""
        if self.open >= self.max_open:
            raise HTTPProblem(
                503,
                "Too many streams",
                f"This server holds its maximum of {self.max_open} event streams.",
                headers={"Retry-After": "5"},
            )
        if self._per_client[holder.client] >= self.max_per_client:
            raise HTTPProblem(
                429,
                "Too many streams",
                f"This client already has {self.max_per_client} event streams or waits open.",
                headers={"Retry-After": "5"},
            )
        if self._per_session[holder.session] >= self.max_per_session:
            raise HTTPProblem(
                429,
                "Too many streams",
                f"This session already has {self.max_per_session} event streams open.",
                headers={"Retry-After": "5"},
            )
        self.open += 1
        self._per_session[holder.session] += 1
        self._per_client[holder.client] += 1

    def release(self, holder: Holder) -> None:
        self.open -= 1
        for counts, key in ((self._per_session, holder.session), (self._per_client, holder.client)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]

    def try_acquire(self, holder: Holder) -> bool:
        """Take a slot if one is free (for what can go on without one: a Prefer wait)."""
        try:
            self.acquire(holder)
        except HTTPProblem:
            return False
        return True
