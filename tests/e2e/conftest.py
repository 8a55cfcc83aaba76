"""Real processes: the session's nats-server, a reactor and an API (uvicorn on a free port)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.processes import NatsServer, Process, api, base_url, reactor


@pytest.fixture(scope="module")
def reactor_process(nats_server: NatsServer) -> Iterator[Process]:
    process = reactor(nats_server.url).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api_process(nats_server: NatsServer) -> Iterator[Process]:
    process = api(nats_server.url).start()
    yield process
    process.stop()


@pytest.fixture
async def client(
    api_process: Process, reactor_process: Process
) -> AsyncIterator[httpx.AsyncClient]:
    # The read timeout sits above the SSE ping interval (PITFALLS: testing streams).
    timeout = httpx.Timeout(10.0, read=30.0)
    async with httpx.AsyncClient(base_url=base_url(api_process), timeout=timeout) as c:
        yield c
