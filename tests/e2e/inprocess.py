"""The API and a reactor on the test's own event loop, for a registry of the test's choosing.

The processes of `tests.processes` serve `domains.DOMAINS`; a test that adds a
throwaway domain (no edit to generic code) wires it here instead, through the
same `create_app` and `reactor.main.run` the processes use. The API is a real
uvicorn on a free port, so HTTP and SSE are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from sse_starlette.sse import AppStatus

from api.app import create_app
from api.settings import Settings
from contracts.connection import NatsSettings
from contracts.registry import Registry
from reactor.main import parse_args
from reactor.main import run as run_reactor
from tests.helpers import eventually
from tests.processes import ROLES


@asynccontextmanager
async def stack_in_process(nats_url: str, registry: Registry) -> AsyncIterator[str]:
    """A reactor and an API for `registry`; yields the API's base URL."""

    def as_role(role: str) -> NatsSettings:
        user, password, _ = ROLES[role]
        return NatsSettings(url=nats_url, user=user, password=password)

    stop = asyncio.Event()
    reactor = asyncio.create_task(
        run_reactor(parse_args(["--dev"]), as_role("reactor"), registry, stop)
    )
    settings = Settings(nats=as_role("api"), port=0, access_log=False)
    app = create_app(settings, registry=registry)
    AppStatus.should_exit = False  # process-wide in sse-starlette; another server may have set it
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())

    async def started() -> bool | None:
        if serving.done():
            serving.result()  # raise what stopped it
        return True if server.started else None

    try:
        await eventually(started)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        stop.set()
        await reactor
        AppStatus.should_exit = False
