"""The one layer every HTTP request passes through first, before the routes.

What it does for each request, reading the request's headers once and adding
to the response's in one place (three middlewares did this apart, each with
its own header dict and its own `send` wrapper, on the accept hop of every
command):
- ids (`api.requests`): the request id (and the client's own, if it gave a
  valid one) and the trace of its `traceparent`, in `scope["state"]`, bound
  to every log line of the request, and the id answered in `X-Request-ID`;
- the browser session (`api.session`): a valid signed `sid` cookie's id, or a
  new one, in `scope["state"]["session_id"]` (`session_sent`: whether the
  request brought it); a new (or rotated) one goes out in `Set-Cookie`,
  except a new one for a cross-site write (`Sec-Fetch-Site: cross-site`, not
  GET or HEAD): a SameSite=Lax cookie is not sent with another site's form
  POST, but a browser keeps the cookie such a navigation's answer sets, so
  another site could sign its visitors out by replacing theirs;
- security headers (`api.security`) on every response, unless the route set
  its own, and `Cache-Control: no-store` on every `/api/` answer that does not
  say otherwise (a signed-in user's email in `/api/sessions/current` was
  cacheable by a shared cache or the browser's history);
- a write another site's page sent (`Sec-Fetch-Site` cross-site or
  same-site, not GET or HEAD) is refused, `403`, before anything reads it:
  the page and its API are one origin, and a browser says where a request
  comes from. (The JSON-only bodies and SameSite=Lax cookies stopped such a
  request already; this does not rest on both holding for ever.) Clients
  that are not browsers send no such header;
- NATS unreachable (`api.outage`): a route that needs it is answered at once.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.outage import refuse, unavailable
from api.problems import problem_response
from api.requests import request_ids
from api.security import RAW_HEADERS
from api.session import DEV_SECRET, new_session_id, session_from_cookie, set_cookie
from contracts import tracing
from contracts.logs import bound
from contracts.notices import Problem

_WANTED = (b"x-request-id", b"traceparent", b"cookie", b"sec-fetch-site")
_READS = ("GET", "HEAD")
_OTHER_SITES = (b"cross-site", b"same-site")
NO_STORE: Final = (b"cache-control", b"no-store")
CROSS_SITE: Final = Problem(
    "/problems/cross-site",
    "Cross-site request",
    403,
    "This service takes changes only from its own pages.",
)


class Edge:
    def __init__(self, app: ASGIApp, *, secret: str = DEV_SECRET, secure: bool = False) -> None:
        self.app = app
        self.secret = secret.encode()
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = {name: value for name, value in scope["headers"] if name in _WANTED}
        client_id, request_id, trace = request_ids(
            given.get(b"x-request-id", b""), given.get(b"traceparent", b"")
        )
        cookie = given.get(b"cookie")
        session_id = session_from_cookie(cookie.decode("latin-1") if cookie else None, self.secret)
        # A new session goes out in a cookie, unless another site's page sent the request
        # (a form POST): the browser would replace the cookie it has (not sent) with it.
        sent = session_id is not None
        other_site = given.get(b"sec-fetch-site") in _OTHER_SITES and scope["method"] not in _READS
        issue = not sent and not other_site
        api = scope["path"].startswith("/api/")
        state = scope.setdefault("state", {})
        state["client_request_id"], state["request_id"] = client_id, request_id
        state["trace"] = trace
        state["session_id"] = session_id or new_session_id()
        state["session_sent"] = sent

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", ()) if n != b"x-request-id"]
                present = {name for name, _ in headers}
                headers.append((b"x-request-id", request_id.encode()))
                headers += [(n, v) for n, v in RAW_HEADERS if n not in present]
                if api and b"cache-control" not in present:
                    headers.append(NO_STORE)
                if issue or state.get("session_rotated"):
                    cookie = set_cookie(self.secret, state["session_id"], secure=self.secure)
                    headers.append((b"set-cookie", cookie))
                message["headers"] = headers
            await send(message)

        with bound(request_id=request_id, trace_id=tracing.trace_id(trace)):
            if other_site:
                response = problem_response(CROSS_SITE)
                await response(scope, receive, send_with_headers)
            elif (svc := unavailable(scope)) is not None:
                await refuse(svc, scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
