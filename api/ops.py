"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
from typing import Final

import nats.errors
import nats.js.errors
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.problems import HTTPProblem
from api.services import Services, services
from contracts.topology import stream_names, view_buckets

# How long readiness (and a 503's naming of what is missing) waits for NATS to say.
MISSING_WITHIN: Final = 2.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def missing_parts(svc: Services) -> list[str]:
    """The streams and view buckets (of the views version in use) that NATS does not have.

    Asked all at once, and given MISSING_WITHIN: a cluster electing a leader may
    not answer, and then this raises nats.errors.TimeoutError (a plain 503).
    """
    current = svc.views.current.version
    active = [f"KV_{b.bucket}" for b in view_buckets(svc.registry.buckets, current)]
    names = list(dict.fromkeys([*stream_names(), *active]))

    async def absent(name: str) -> bool:
        try:
            await svc.js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return True
        return False

    try:
        found = await asyncio.wait_for(asyncio.gather(*map(absent, names)), MISSING_WITHIN)
    except TimeoutError as exc:
        raise nats.errors.TimeoutError from exc
    return [name for name, gone in zip(names, found, strict=True) if gone]


async def readyz(request: Request) -> Response:
    svc = services(request)
    if not svc.nc.is_connected:
        raise HTTPProblem(503, "Not ready", "Not connected to NATS.", headers={"Retry-After": "2"})
    missing = await missing_parts(svc)
    if missing:
        raise HTTPProblem(
            503,
            "Not ready",
            f"Missing streams or buckets: {', '.join(missing)}.",
            headers={"Retry-After": "2"},
        )
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    svc = services(request)
    await svc.metrics.refresh(svc.js, svc.views.current, connected=svc.nc.is_connected)
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)
