"""NATS going away under a running API and reactor, on a server of their own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.topology import view_bucket
from tests.conftest import connect_test_client
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


async def test_with_nats_down_every_route_that_needs_it_answers_within_a_second(
    fresh_stack: Stack,
) -> None:
    fresh_stack.server.stop()
    async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=10) as client:

        async def answer(method: str, path: str, **kw: Any) -> httpx.Response:
            started = time.monotonic()
            response = await client.request(method, path, **kw)
            took = time.monotonic() - started
            assert took < 1.0, f"{method} {path} took {took:.2f}s"
            return response

        keyed = {"Idempotency-Key": "k-1", "Prefer": "wait=5"}
        for method, path, kw in [
            ("GET", "/api/locations", {}),
            ("GET", "/api/locations/stats?min_position=1", {}),
            ("GET", "/readyz", {}),
            ("GET", f"/api/commands/{'a' * 32}", {}),
            (
                "POST",
                "/api/locations",
                {"json": {"name": "X", "category": "City"}, "headers": keyed},
            ),
            ("GET", "/api/sessions/current", {}),
        ]:
            response = await answer(method, path, **kw)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["retry-after"] == "2"
            assert response.headers["content-type"] == "application/problem+json"
        stream = await answer("GET", "/api/events")
        assert stream.status_code == 200
        assert "event: unavailable" in stream.text
        assert "retry: " in stream.text
        assert (await answer("GET", "/healthz")).status_code == 200
        assert (await answer("GET", "/openapi.json")).status_code == 200
    fresh_stack.server.restart()  # so the processes stop as they would (with NATS there)


async def test_a_missing_stream_or_bucket_is_a_503_that_names_it(fresh_stack: Stack) -> None:
    # No reactor: it would make the stream again (as it does when its consumer goes),
    # while a POST asks NATS again for a few seconds (PUBLISH_PATIENCE).
    fresh_stack.reactor.stop()
    nc = await connect_test_client(fresh_stack.server.url)
    try:
        js = nc.jetstream()
        await js.delete_stream("COMMANDS")
        await js.delete_stream("KV_" + view_bucket("locations", 1))
    finally:
        await nc.close()
    async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=10) as client:
        body = {"name": "Hull", "category": "City"}
        for method, path, json in [
            ("GET", "/api/locations", None),
            ("GET", "/api/locations/0123456789abcdef01234567", None),
            ("POST", "/api/locations", body),
        ]:
            response = await client.request(method, path, json=json)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["retry-after"] == "2"
            problem = response.json()
            assert problem["type"] == "/problems/store-incomplete"
            assert "COMMANDS" in problem["detail"]
            assert "KV_view_locations" in problem["detail"]
            assert "Error" not in problem["detail"]  # no exception text
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "COMMANDS" in ready.json()["detail"]
