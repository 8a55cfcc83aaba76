"""`create_app(settings)`: the Starlette application and its lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api import commands, live, ops, sessions, status, streams, web
from api import reads as reads_api
from api.backlog import Backlog
from api.cursors import Cursors
from api.edge import Edge
from api.idempotency import IdempotencyKeys
from api.limits import StreamLimits
from api.metrics import Metrics
from api.passwords import Passwords
from api.problems import UNAVAILABLE, HTTPProblem, problem_response
from api.relay import NoticeRelay
from api.services import Endpoint, Services, services
from api.session import Accounts, SessionStore
from api.settings import Settings
from api.signin_limits import SignInLimits
from contracts.connection import close, connect
from contracts.domain import GetRead, ListRead, SummaryRead
from contracts.notices import Problem
from contracts.registry import Registry
from contracts.topology import (
    IDEMPOTENCY_BUCKET,
    SESSIONS_BUCKET,
    SIGN_IN_ATTEMPTS_BUCKET,
    ensure_topology,
    refuse_legacy_store,
)
from contracts.views import ActiveViews
from domains import registry as default_registry

log = logging.getLogger("api")

Connect = Callable[..., Awaitable[Client]]


def create_app(
    settings: Settings, *, registry: Registry | None = None, connect_nats: Connect = connect
) -> Starlette:
    """The API for the domains of `registry` (by default every domain in `domains.DOMAINS`)."""
    registry = registry or default_registry()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        metrics = Metrics(registry)
        relay = NoticeRelay(on_notice=metrics.observe_notice, on_missed=metrics.notices_missed.inc)
        views = ActiveViews()

        async def on_reconnect() -> None:
            # What went by while disconnected: notices (waiters look in the
            # store again) and a move of the view version pointer.
            await relay.resync()
            await views.refresh()

        async def on_disconnect() -> None:
            relay.unavailable()  # open session streams say so, and end

        async with AsyncExitStack() as stack:
            nc = await connect_nats(
                settings.nats, "api", reconnected_cb=on_reconnect, disconnected_cb=on_disconnect
            )
            stack.push_async_callback(close, nc)
            js = nc.jetstream()
            await prepare_store(js, settings, registry)
            await relay.start(nc)
            stack.push_async_callback(relay.stop)
            await views.start(nc)
            stack.push_async_callback(views.stop)
            limits = StreamLimits(
                settings.max_streams,
                settings.max_streams_per_session,
                settings.max_streams_per_client,
            )
            accounts = None
            if registry.sign_in is not None:
                accounts = Accounts(
                    registry.sign_in,
                    SessionStore(await js.key_value(SESSIONS_BUCKET)),
                    SignInLimits(
                        await js.key_value(SIGN_IN_ATTEMPTS_BUCKET),
                        per_email=settings.sign_in_failures_per_email,
                        per_client=settings.sign_in_failures_per_client,
                        window=settings.sign_in_window,
                    ),
                )
            backlog = Backlog(js, settings.command_backlog_limit)
            await backlog.start()
            stack.push_async_callback(backlog.stop)
            svc = Services(
                settings=settings,
                nc=nc,
                js=js,
                relay=relay,
                views=views,
                registry=registry,
                idempotency=IdempotencyKeys(await js.key_value(IDEMPOTENCY_BUCKET)),
                limits=limits,
                passwords=Passwords(),
                metrics=metrics,
                cursors=Cursors(settings.session_secret),
                backlog=backlog,
                accounts=accounts,
            )
            svc.metrics.waiters.set_function(lambda: relay.waiters)
            svc.metrics.streams_open.set_function(lambda: limits.open)
            yield {"services": svc}

    app = Starlette(
        routes=[*api_routes(registry), *web.routes(registry, settings.web_dir, dev=settings.dev)],
        lifespan=lifespan,
        middleware=[
            Middleware(Edge, secret=settings.session_secret, secure=settings.cookie_secure),
        ],
        exception_handlers={
            HTTPProblem: _on_problem,
            HTTPException: _on_http_exception,
            nats.errors.Error: _on_nats_error,
            Exception: _on_unexpected,
        },
    )
    # An unknown route is a 404 problem, "/api/<collection>/" too: Starlette's default
    # answered a trailing slash with a 307 to a URL made from the request's Host header.
    app.router.redirect_slashes = False
    return app


async def prepare_store(js: JetStreamContext, settings: Settings, registry: Registry) -> None:
    """Refuse a store of the previous version; make what is missing (the API's NATS user
    may create a stream, not change one: the reactor updates what differs)."""
    await refuse_legacy_store(js, registry.legacy_buckets())
    await ensure_topology(
        js,
        registry.buckets,
        events_max_bytes=settings.nats.events_max_bytes,
        duplicate_window=settings.nats.duplicate_window,
        replicas=settings.nats.replicas,
        update=False,
    )


def api_routes(registry: Registry) -> list[BaseRoute]:
    """The generic routes, then each domain's commands and reads, derived from the registry.

    Summaries come before `{id}` reads, so `/api/<collection>/stats` is not taken for an id.
    """
    found: list[BaseRoute] = [
        Route("/api/commands/{command_id}", status.status),
        Route("/api/commands/{command_id}/events", streams.command_events),
        Route("/api/events", streams.session_events),
        Route("/healthz", ops.healthz),
        Route("/readyz", ops.readyz),
        Route("/metrics", ops.metrics),
        *sessions.routes(registry.sign_in),
    ]
    reads = registry.reads()
    ordered = [r for r in reads if isinstance(r, SummaryRead)] + [
        r for r in reads if not isinstance(r, SummaryRead)
    ]
    for read in ordered:
        view = registry.readable(read.view)
        assert view is not None  # the registry checked
        if isinstance(read, ListRead):
            parent = None if read.parent is None else registry.readable(read.parent)
            endpoint = reads_api.list_endpoint(read, view, parent)
            found.append(Route(read.path, endpoint, methods=["GET"]))
        elif isinstance(read, GetRead):
            found.append(Route(read.path, reads_api.get_endpoint(read, view), methods=["GET"]))
            if view.followable:
                found.append(Route(read.path + "/live", live.live_endpoint(read, view)))
        else:
            found.append(Route(read.path, reads_api.summary_endpoint(read, view), methods=["GET"]))
    for spec in registry.commands.values():
        if spec.path is not None:
            found.append(Route(spec.path, commands.endpoint(spec), methods=["POST"]))
    return merged(found)


def merged(routes: list[BaseRoute]) -> list[BaseRoute]:
    """One route per path, answering each of its methods: a `405` then lists in `Allow`
    every method of the path (a read and a command share `/api/<collection>`), not the
    first route's only."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for route in routes:
        assert isinstance(route, Route)
        methods = by_path.setdefault(route.path, {})
        for method in route.methods or {"GET"}:
            methods.setdefault(method, route.endpoint)
    return [
        Route(path, _dispatch(methods), methods=list(methods)) for path, methods in by_path.items()
    ]


def _dispatch(methods: dict[str, Endpoint]) -> Endpoint:
    if len(set(methods.values())) == 1:
        return next(iter(methods.values()))

    async def by_method(request: Request) -> Response:
        return await methods[request.method](request)

    return by_method


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPProblem)
    return problem_response(exc.problem, exc.headers)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code)
    if title is None:  # nothing more to say than the status
        problem = Problem("about:blank", "HTTP error", exc.status_code, str(exc.detail))
    else:  # as the routes' own 404s say it
        kind = "/problems/" + title.lower().replace(" ", "-")
        problem = Problem(kind, title, exc.status_code, f"{title}: {request.url.path}")
    return problem_response(problem, exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    """A bug: logged with its traceback, answered as a problem that tells nothing of it."""
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        Problem(
            type="/problems/internal-error",
            title="Internal error",
            status=500,
            detail="Something went wrong on our side. It has been logged; retry later.",
        )
    )


async def _on_nats_error(request: Request, exc: Exception) -> Response:
    log.warning("NATS error on %s: %r", request.url.path, exc)
    missing = []
    if isinstance(exc, nats.js.errors.NotFoundError | nats.js.errors.NoStreamResponseError):
        # Not knowing (NATS away, or a cluster electing a leader) is the plain 503.
        with contextlib.suppress(nats.errors.Error):
            missing = await ops.missing_parts(services(request))
    if not missing:
        return problem_response(UNAVAILABLE, {"Retry-After": "2"})
    return problem_response(
        Problem(
            type="/problems/store-incomplete",
            title="Message store incomplete",
            status=503,
            detail=f"Missing from NATS: {', '.join(missing)}. Every process creates them at "
            "start-up: restart one (a view's bucket then needs `task rebuild`).",
        ),
        {"Retry-After": "2"},
    )
