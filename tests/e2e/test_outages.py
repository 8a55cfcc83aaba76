"""NATS going away under a running API and reactor, on a server of their own."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from nats.js import JetStreamContext

from contracts.topology import COMMANDS_STREAM, NOTICES_STREAM, view_bucket
from tests.conftest import connect_test_client
from tests.e2e.sse import command_events, post_location
from tests.helpers import eventually, stream_messages, unique_name
from tests.nats_proxy import NatsProxy, behind_proxy
from tests.processes import NatsServer, Stack, api, base_url, reactor, run_module

WAIT: Final = {"Prefer": "wait=10"}


async def test_nats_down_answers_503_then_recovers_without_losing_accepted_commands(
    fresh_stack: Stack,
) -> None:
    server = fresh_stack.server
    async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=10) as client:
        before = await post_location(client, unique_name("Before"))
        assert before.status_code == 202
        assert "notify_nats_up 1.0" in (await client.get("/metrics")).text
        server.stop()

        refused = await post_location(client, unique_name("During"))
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "2"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert (await client.get("/healthz")).status_code == 200
        # What NATS holds is not known now: no figure of before beside nats_up 0.
        metrics = (await client.get("/metrics")).text
        assert "notify_nats_up 0.0" in metrics
        assert "notify_commands_pending NaN" in metrics
        assert "notify_view_behind_events{" not in metrics

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


@pytest.mark.parametrize("tool", [("reactor.status",), ("reactor.dlq", "list")])
def test_a_tool_without_nats_says_so_in_one_line(tool: tuple[str, ...]) -> None:
    """A warning naming the error came first, then the tool's line naming it again."""
    done = run_module("nats://127.0.0.1:1", *tool, env={"NATS_STARTUP_TIMEOUT": "1"})
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    name = tool[0].removeprefix("reactor.")
    assert line.startswith(f"{name}: cannot connect to NATS at nats://127.0.0.1:1 within 1s")
    assert "ConnectionRefusedError" in line


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
        # Event streams say so in-band: a 503 ends a browser's EventSource for good.
        for path in ("/api/events", f"/api/commands/{'a' * 32}/events"):
            stream = await answer("GET", path)
            assert stream.status_code == 200, path
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


@asynccontextmanager
async def proxied_stack(
    server: NatsServer,
) -> AsyncIterator[tuple[NatsProxy, httpx.AsyncClient, JetStreamContext]]:
    """A reactor, and an API that reaches `server` through a proxy (a POST waits 1 s
    for its publish); a client of the API and the test's own JetStream."""
    the_reactor = reactor(server.url).start()
    nc = await connect_test_client(server.url)
    try:
        patient_1s = partial(api, env={"PUBLISH_PATIENCE": "1"})
        async with (
            behind_proxy(server.port, patient_1s) as (proxy, the_api),
            httpx.AsyncClient(base_url=base_url(the_api), timeout=15) as client,
        ):
            yield proxy, client, nc.jetstream()
    finally:
        await nc.close()
        the_reactor.stop()


@pytest.mark.parametrize("fault", ["ack-lost", "publish-lost"])
async def test_a_command_whose_publish_was_not_acknowledged_is_one_command_on_retry(
    fault: str, fresh_server: NatsServer
) -> None:
    """The API's publish of a keyed command is stored but its ack never comes back
    (or the publish itself is lost): a 503, and the retry with the same key is the
    same command (stored once, handled once), published only if it was not stored."""
    async with proxied_stack(fresh_server) as (proxy, client, js):
        await _unacknowledged_then_retried(client, js, proxy, fault)


async def test_a_nats_error_before_the_publish_frees_the_key_for_the_retry(
    fresh_server: NatsServer,
) -> None:
    """NATS fails under a read the command needs (its account's record): a 503 with
    nothing published, and the retry with the same key is taken as a new command at
    once (not "in progress" until the key goes stale)."""
    async with proxied_stack(fresh_server) as (proxy, client, js):
        opened = await client.post("/api/accounts", json={"holder": "Ada"}, headers=WAIT)
        assert opened.status_code == 201, opened.text
        body = {
            "account_id": opened.json()["id"],
            "origin": "GB",
            "destination": "FR",
            "weight_grams": 500,
        }
        key = {"Idempotency-Key": "after-a-failed-read"}
        before = await stream_messages(js, COMMANDS_STREAM)
        proxy.lose_acks(f"$JS.API.STREAM.MSG.GET.KV_{view_bucket('accounts', 1)}")
        refused = await client.post("/api/shipments", json=body, headers=key)
        assert refused.status_code == 503, refused.text
        assert proxy.acks_lost
        assert await stream_messages(js, COMMANDS_STREAM) == before
        proxy.heal()
        retried = await client.post("/api/shipments", json=body, headers=key)
        assert retried.status_code == 202, retried.text
        assert await stream_messages(js, COMMANDS_STREAM) == before + 1


async def test_a_wait_that_cannot_read_the_store_answers_the_plain_202(
    fresh_server: NatsServer,
) -> None:
    """The command is published and acknowledged, then NATS fails under the wait's read
    of the store (its reply lost): the answer is the plain 202 with the command's id,
    never a 503, which says nothing was stored (a retry without a key would be a second
    command); the command goes on and succeeds."""
    async with proxied_stack(fresh_server) as (proxy, client, js):
        before = await stream_messages(js, COMMANDS_STREAM)
        proxy.lose_acks(f"$JS.API.STREAM.MSG.GET.{NOTICES_STREAM}")
        waited = await post_location(client, unique_name("Waited"), Prefer="wait=3")
        assert waited.status_code == 202, waited.text
        assert proxy.acks_lost
        assert await stream_messages(js, COMMANDS_STREAM) == before + 1
        proxy.heal()
        events = await command_events(client, waited.json()["command_id"], wait_s=20)
        assert [e.event for e in events] == ["succeeded"]


async def _unacknowledged_then_retried(
    client: httpx.AsyncClient, js: JetStreamContext, proxy: NatsProxy, fault: str
) -> None:
    name, key = unique_name("Unacked"), {"Idempotency-Key": f"unacked-{fault}"}
    before = await stream_messages(js, COMMANDS_STREAM)
    if fault == "ack-lost":
        proxy.lose_acks("cmd.")
    else:
        proxy.drop_publishes("cmd.")
    refused = await post_location(client, name, **key)
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "2"
    stored = await stream_messages(js, COMMANDS_STREAM) - before
    if fault == "ack-lost":
        assert proxy.acks_lost
        assert stored == 1  # stored all the same
    else:
        assert proxy.dropped
        assert stored == 0
    proxy.heal()

    retried = await post_location(client, name, **key)
    assert retried.status_code == 202, retried.text
    command_id = retried.json()["command_id"]
    events = await command_events(client, command_id, wait_s=20)
    assert [e.event for e in events] == ["succeeded"]  # a second command would fail: name taken
    assert await stream_messages(js, COMMANDS_STREAM) == before + 1
    again = await post_location(client, name, **key)
    assert again.json()["command_id"] == command_id
    assert again.headers["idempotent-replayed"] == "true"
    listed = (await client.get("/api/locations", params={"limit": 100})).json()
    assert [location["name"] for location in listed["items"]].count(name) == 1
