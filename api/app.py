"""`create_app(settings)`: the Starlette application and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import nats.errors
from nats.aio.client import Client
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from api import commands, ops, reads, streams
from api.idempotency import IdempotencyKeys
from api.limits import StreamLimits
from api.problems import HTTPProblem, problem_response
from api.relay import NoticeRelay
from api.services import Services
from api.session import SessionMiddleware
from api.settings import Settings
from contracts.connection import connect
from contracts.notices import Problem
from contracts.projections import ActiveProjection
from contracts.topology import IDEMPOTENCY_BUCKET, ensure_topology

log = logging.getLogger("api")

Connect = Callable[..., Awaitable[Client]]


def create_app(settings: Settings, *, connect_nats: Connect = connect) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        relay, projection = NoticeRelay(), ActiveProjection()

        async def on_reconnect() -> None:
            # What went by while disconnected: notices (waiters look in the
            # store again) and a move of the projection pointer.
            relay.resync()
            await projection.refresh()

        async with AsyncExitStack() as stack:
            nc = await connect_nats(settings.nats, "api", reconnected_cb=on_reconnect)
            stack.push_async_callback(nc.close)
            js = nc.jetstream()
            await ensure_topology(js)
            await relay.start(nc)
            stack.push_async_callback(relay.stop)
            await projection.start(nc)
            stack.push_async_callback(projection.stop)
            limits = StreamLimits(settings.max_streams, settings.max_streams_per_session)
            svc = Services(
                settings=settings,
                nc=nc,
                js=js,
                relay=relay,
                projection=projection,
                idempotency=IdempotencyKeys(await js.key_value(IDEMPOTENCY_BUCKET)),
                limits=limits,
            )
            svc.metrics.gauges["relay_waiters"] = lambda: relay.waiters
            svc.metrics.gauges["sse_streams_open"] = lambda: limits.open
            log.info("API ready: open http://%s:%d", settings.host, settings.port)
            yield {"services": svc}

    def page(request: Request) -> Response:
        return FileResponse(settings.web_dir / "index.html")

    routes = [
        Route("/api/commands/{command_id}", commands.status),
        Route("/api/commands/{command_id}/events", streams.command_events),
        Route("/api/events", streams.session_events),
        Route("/api/locations", reads.list_locations, methods=["GET"]),
        Route("/api/locations/stats", reads.location_stats),
        Route("/api/locations/{location_id}", reads.get_location),
        Route("/api/{collection}", commands.submit, methods=["POST"]),
        Route("/healthz", ops.healthz),
        Route("/readyz", ops.readyz),
        Route("/metrics", ops.metrics),
        Route("/", page),
        Route("/locations/{location_id}", page),
        Mount("/static", StaticFiles(directory=settings.web_dir), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SessionMiddleware, secure=settings.cookie_secure)],
        exception_handlers={
            HTTPProblem: _on_problem,
            HTTPException: _on_http_exception,
            nats.errors.Error: _on_nats_error,
        },
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPProblem)
    return problem_response(exc.problem, exc.headers)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = exc.detail if exc.status_code not in (404, 405) else f"{title}: {request.url.path}"
    return problem_response(
        Problem(type="about:blank", title=title, status=exc.status_code, detail=str(detail)),
        exc.headers,
    )


async def _on_nats_error(request: Request, exc: Exception) -> Response:
    log.warning("NATS error on %s: %r", request.url.path, exc)
    return problem_response(
        Problem(
            type="/problems/service-unavailable",
            title="Service unavailable",
            status=503,
            detail="The message store is unreachable. Retry shortly.",
        ),
        {"Retry-After": "2"},
    )
