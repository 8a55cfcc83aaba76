"""Anonymous browser sessions: a random id in an HttpOnly, SameSite=Lax cookie.

Commands carry the session id; their notices are published under it. A
request without a valid cookie gets a new session (curl without a cookie jar
simply gets a fresh one each time; its per-command URLs still work).
"""

from __future__ import annotations

import re
import uuid
from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "sid"
MAX_AGE = 30 * 24 * 3600
_VALID = re.compile(r"^[0-9a-f]{32}$")


def new_session_id() -> str:
    return uuid.uuid4().hex


def session_from_cookie(header: str | None) -> str | None:
    if not header:
        return None
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header)
    except Exception:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel is not None and _VALID.match(morsel.value) else None


class SessionMiddleware:
    def __init__(self, app: ASGIApp, *, secure: bool = False) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw = headers.get(b"cookie")
        session_id = session_from_cookie(raw.decode("latin-1") if raw else None)
        is_new = session_id is None
        scope.setdefault("state", {})["session_id"] = session_id or new_session_id()

        async def send_with_cookie(message: Message) -> None:
            if is_new and message["type"] == "http.response.start":
                attrs = f"Path=/; Max-Age={MAX_AGE}; HttpOnly; SameSite=Lax"
                if self.secure:
                    attrs += "; Secure"
                MutableHeaders(scope=message).append(
                    "set-cookie", f"{COOKIE}={scope['state']['session_id']}; {attrs}"
                )
            await send(message)

        await self.app(scope, receive, send_with_cookie)
