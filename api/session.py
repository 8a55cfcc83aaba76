"""Browser sessions: a random id in an HttpOnly, SameSite=Lax cookie, signed by the server.

Only ids the server issued are taken: the cookie is `<id>.<HMAC-SHA256 of the
id with SESSION_SECRET>`, and any other value (made up, tampered with, from
another deployment) starts a new session. Every API instance of a
deployment shares the secret.

Commands carry the session id; their notices are published under it. A
request without a valid cookie gets a new session (curl without a cookie jar
simply gets a fresh one each time; its per-command URLs still work). A
session may be signed in as a user (`api.sessions`); signing in or out gives
the browser a new id (`rotate`), so an id known before signing in is worth
nothing after it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from api.signin_limits import SignInLimits
from contracts.commands import encoder
from contracts.domain import SignIn

COOKIE = "sid"
MAX_AGE = 30 * 24 * 3600
_VALID = re.compile(r"^([0-9a-f]{32})\.([0-9a-f]{32})$")
_COOKIE = re.compile(rf"(?:^|;)\s*{COOKIE}=([^;]*)")
DEV_SECRET = "notify-local-dev-session-secret"  # SESSION_SECRET replaces it in production


def new_session_id() -> str:
    return uuid.uuid4().hex


def _mac(secret: bytes, session_id: str) -> str:
    return hmac.new(secret, session_id.encode(), hashlib.sha256).hexdigest()[:32]


def cookie_value(secret: bytes, session_id: str) -> str:
    """What the cookie holds: the id and the server's signature of it (HMAC-SHA256)."""
    return f"{session_id}.{_mac(secret, session_id)}"


def session_from_cookie(header: str | None, secret: bytes = DEV_SECRET.encode()) -> str | None:
    """The session id of a Cookie header, if the server signed it; None for anything else
    (no cookie, a malformed one, an id the client made up)."""
    if not header:
        return None
    # Our cookie only, found directly: a parse of the whole header (SimpleCookie)
    # costs on every request and gives up on all of it for one odd cookie of another site.
    # A browser may send several `sid` (a stale one of a parent path or domain
    # first): the first one the server signed counts.
    for value in _COOKIE.findall(header):
        found = _VALID.match(value.strip().strip('"'))
        if found and hmac.compare_digest(found.group(2), _mac(secret, found.group(1))):
            return found.group(1)
    return None


def set_cookie(secret: bytes, session_id: str, *, secure: bool) -> bytes:
    """The Set-Cookie value that hands the browser this session."""
    attrs = f"Path=/; Max-Age={MAX_AGE}; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
    return f"{COOKIE}={cookie_value(secret, session_id)}; {attrs}".encode("latin-1")


def rotate(state: Any) -> str:
    """Give this request's browser a new session id (its cookie goes out with the answer)."""
    state.session_id = new_session_id()
    state.session_rotated = True
    return str(state.session_id)


class Binding(msgspec.Struct, frozen=True):
    user_id: str
    email: str
    signed_in_at: datetime


_binding: Final = msgspec.json.Decoder(Binding)


class SessionStore:
    """Which user each browser session is signed in as."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @staticmethod
    def _key(session: str) -> str:
        # A hash: a copy of the bucket does not hand out live session ids.
        return hashlib.sha256(session.encode()).hexdigest()

    async def user(self, session: str) -> Binding | None:
        try:
            entry = await self._kv.get(self._key(session))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return _binding.decode(entry.value or b"")

    async def bind(self, session: str, binding: Binding) -> None:
        await self._kv.put(self._key(session), encoder.encode(binding))

    async def forget(self, session: str) -> None:
        await self._kv.delete(self._key(session))


@dataclass(frozen=True)
class Accounts:
    """What signing in needs, when a domain declares a `SignIn`."""

    sign_in: SignIn
    sessions: SessionStore
    limits: SignInLimits
