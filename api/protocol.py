"""uvicorn's HTTP protocol (httptools) with a deadline for headers, a header size limit,
and its own refusals as problem+json.

What uvicorn leaves open: a connection that sends nothing, or a request
whose headers never end (slowloris), is held for ever, each costing a
descriptor and memory; headers have no size limit; and what its parser
refuses is answered in plain text. Here:

- a request's headers must be complete within `header_timeout` seconds of
  the connection opening (or of the request's first byte on a kept-alive
  connection): else `408` and the connection is closed;
- the headers of one request may hold at most `max_header_bytes`: else `431`;
- a request the parser refuses gets `400` problem+json, then the close.

The body has its deadline in the application (`api.body`). Idle kept-alive
connections are closed by uvicorn's own keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REASONS: Final = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
}


class _Refused(Exception):
    """Raised from a parser callback: the parser stops, and uvicorn calls send_400_response."""


def problem_bytes(status: int, title: str, detail: str) -> bytes:
    """A whole HTTP/1.1 response: the problem, then the connection closes (pure)."""
    body = json.dumps(
        {
            "type": f"/problems/{title.lower().replace(' ', '-')}",
            "title": title,
            "status": status,
            "detail": detail,
        }
    ).encode()
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, REASONS[status], len(body))
    )
    return head + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 32 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._refusal: tuple[int, str, str] | None = None

    # ---- the header deadline -----------------------------------------------------------
    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self._refuse(
            408, "Request timeout", f"The request's headers took over {self.header_timeout:g} s."
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.max_header_bytes:
            self._refusal = (
                431,
                "Headers too large",
                f"The request's headers are over {self.max_header_bytes} bytes.",
            )
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    # ---- refusals --------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        status, title, detail = self._refusal or (
            400,
            "Malformed request",
            "This is not a valid HTTP request.",
        )
        self._refuse(status, title, detail)

    def _refuse(self, status: int, title: str, detail: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(problem_bytes(status, title, detail))
            self.transport.close()
