"""Signing a browser session in and out (DESIGN §7.3), against the domains' `SignIn` view.

- `POST /api/sessions` `{email, password}`: checks the password against the
  credentials view (argon2, `api.passwords`), then binds a new session id to
  the user (KV `sessions`, key: a hash of the id) and gives the browser that
  id (the old one is worth nothing signed in). A wrong password and an
  unknown address get the same 401, after the same work. Failures are
  limited per address and per client (`api.signin_limits`): 429 with
  Retry-After.
- `GET /api/sessions/current`: `{user_id, email, display_name}`, or 401.
- `DELETE /api/sessions/current`: forgets the binding and gives the browser
  a fresh anonymous session; 204.

`signed_in(request)` is how a command route learns who sends it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.body import command_payload
from api.limits import holder_of
from api.problems import HTTPProblem
from api.services import Services, services, session_id, session_sent
from api.session import Binding, rotate
from contracts.commands import encoder
from contracts.domain import SignIn
from contracts.views import is_removed


class SignInForm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Sign this browser session in."""

    email: Annotated[str, msgspec.Meta(min_length=1, max_length=254)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class CurrentUser(msgspec.Struct, frozen=True):
    """Who this browser session is signed in as."""

    user_id: str
    email: str
    display_name: str


class _Credentials(msgspec.Struct, frozen=True):
    """The fields of a credentials record sign-in reads (the registry checks they exist)."""

    user_id: str
    email: str
    display_name: str
    password_hash: str


_credentials: Final = msgspec.json.Decoder(_Credentials)

WRONG: Final = "Wrong email or password."
_UNKNOWN: Final = object()


async def signed_in(request: Request) -> Binding | None:
    """The user this request's session is signed in as (read once per request)."""
    user = getattr(request.state, "user", _UNKNOWN)
    if user is _UNKNOWN:
        accounts = services(request).accounts
        user = None if accounts is None else await accounts.sessions.user(session_id(request))
        request.state.user = user
    assert user is None or isinstance(user, Binding)
    return user


def not_signed_in() -> HTTPProblem:
    return HTTPProblem(
        401,
        "Not signed in",
        "Sign in first (POST /api/sessions).",
        slug="not-signed-in",
        headers={"WWW-Authenticate": 'Cookie realm="notify-service"'},
    )


async def _credentials_of(svc: Services, email: str) -> _Credentials | None:
    assert svc.accounts is not None
    sign_in = svc.accounts.sign_in
    record = await svc.views.current.record(sign_in.view, sign_in.key(email))
    if record is None or is_removed(record):
        return None
    return _credentials.decode(record.state)


def routes(sign_in: SignIn | None) -> list[BaseRoute]:
    """The session routes, when a domain declares what to sign in against."""
    if sign_in is None:
        return []

    async def sign_in_endpoint(request: Request) -> Response:
        svc = services(request)
        accounts = svc.accounts
        assert accounts is not None
        limits = accounts.limits
        settings = svc.settings
        form = await command_payload(
            request, SignInForm, settings.max_body_bytes, settings.body_timeout
        )
        client = holder_of(request).client
        wait = await limits.attempt(form.email, client)  # counted before it is checked
        if wait > 0:
            raise HTTPProblem(
                429,
                "Too many attempts",
                "Too many failed sign-ins for this email or from this client. Try again later.",
                slug="sign-in-limited",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        try:
            found = await _credentials_of(svc, form.email)
            right = await svc.passwords.verify(
                found.password_hash if found else None, form.password
            )
        except BaseException:
            await limits.take_back(form.email, client)  # not checked: not a failure
            raise
        if not right:
            raise HTTPProblem(401, "Sign-in failed", WRONG, slug="sign-in-failed")
        await limits.take_back(form.email, client)
        assert found is not None
        if session_sent(request):  # a session signed in before: its cookie ends here
            await accounts.sessions.forget(session_id(request))
        new_session = rotate(request.state)
        await accounts.sessions.bind(
            new_session, Binding(found.user_id, found.email, datetime.now(UTC))
        )
        user = CurrentUser(found.user_id, found.email, found.display_name)
        return Response(encoder.encode(user), media_type="application/json")

    async def current(request: Request) -> Response:
        svc = services(request)
        binding = await signed_in(request)
        if binding is None:
            raise not_signed_in()
        found = await _credentials_of(svc, binding.email)
        name = found.display_name if found is not None else ""
        user = CurrentUser(binding.user_id, binding.email, name)
        return Response(encoder.encode(user), media_type="application/json")

    async def sign_out(request: Request) -> Response:
        svc = services(request)
        assert svc.accounts is not None
        await svc.accounts.sessions.forget(session_id(request))
        rotate(request.state)
        return Response(status_code=204)

    return [
        Route("/api/sessions", sign_in_endpoint, methods=["POST"]),
        # One path, two methods: api.app.merged() makes them one route.
        Route("/api/sessions/current", current, methods=["GET"]),
        Route("/api/sessions/current", sign_out, methods=["DELETE"]),
    ]
