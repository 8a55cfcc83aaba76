"""An HTTP client for the module's API process (tests/conftest.py starts the processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.processes import Process, base_url


@pytest.fixture
async def client(
    api_process: Process, reactor_process: Process
) -> AsyncIterator[httpx.AsyncClient]:
    # The read timeout sits above the SSE ping interval (PITFALLS: testing streams).
    timeout = httpx.Timeout(10.0, read=30.0)
    async with httpx.AsyncClient(base_url=base_url(api_process), timeout=timeout) as c:
        yield c
