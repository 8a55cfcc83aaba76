"""NATS going away under a running API and reactor, on a server of their own."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.sse import command_events, post_location
from tests.helpers import eventually, unique_name
from tests.processes import Stack, api


async def test_nats_down_answers_503_then_recovers_without_losing_accepted_commands(
    fresh_stack: Stack,
) -> None:
    server = fresh_stack.server
    async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=10) as client:
        before = await post_location(client, unique_name("Before"))
        assert before.status_code == 202
        server.stop()

        refused = await post_location(client, unique_name("During"))
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "2"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert (await client.get("/healthz")).status_code == 200

        server.restart()

        async def accepted_again() -> httpx.Response | None:
            response = await post_location(client, unique_name("After"))
            return response if response.status_code == 202 else None

        after = await eventually(accepted_again, within=20)
        for response in (before, after):
            events = await command_events(client, response.json()["command_id"], wait_s=20)
            assert [e.event for e in events] == ["succeeded"]
        assert (await client.get("/readyz")).status_code == 200


async def test_api_without_nats_fails_with_one_clear_line(tmp_path: Path) -> None:
    process = api("nats://127.0.0.1:1", env={"NATS_STARTUP_TIMEOUT": "1"})
    with pytest.raises(RuntimeError, match="did not become ready"):
        process.start()
    assert process.stop() == 1
    assert any(
        line.startswith("api: cannot connect to NATS at nats://127.0.0.1:1 within 1s")
        for line in process.lines
    )
    assert not any("Traceback" in line for line in process.lines)
