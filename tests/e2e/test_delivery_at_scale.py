"""Delivery across processes and under load: two API instances, caps, shutdown, expiry, 20 x 50."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext

from contracts.topology import NOTICES_STREAM
from tests.conftest import connect_test_client
from tests.e2e.sse import SessionStream, command_events, command_id_of, position_of, post_location
from tests.helpers import eventually, unique_name
from tests.processes import NatsServer, Process, Stack, api, base_url


@asynccontextmanager
async def session(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10.0, read=30.0)) as client:
        await client.get("/healthz")
        yield client


async def submit(client: httpx.AsyncClient) -> str:
    response = await post_location(client, unique_name())
    assert response.status_code == 202, response.text
    command_id: str = response.json()["command_id"]
    return command_id


@pytest.fixture(scope="module")
def second_api(nats_server: NatsServer) -> Iterator[Process]:
    process = api(nats_server.url).start()
    yield process
    process.stop()


async def test_any_instance_serves_any_stream(
    api_process: Process, second_api: Process, reactor_process: Process
) -> None:
    """Posted to one API instance; both event streams read from the other, with the same cookie."""
    async with session(base_url(api_process)) as on_a:
        cookies = on_a.cookies
        async with httpx.AsyncClient(
            base_url=base_url(second_api), cookies=cookies, timeout=httpx.Timeout(10.0, read=30.0)
        ) as on_b:
            async with SessionStream(on_b) as stream:
                cursor = (await stream.next()).id
                command_id = await submit(on_a)
                (event,) = await stream.notices(1)
            assert command_id_of(event) == command_id
            assert [e.event for e in await command_events(on_b, command_id)] == ["succeeded"]
            # and a resume on A from B's cursor
            async with SessionStream(on_a, last_event_id=cursor) as stream:
                (again,) = await stream.notices(1)
            assert again.id == event.id


@pytest.fixture(scope="module")
def capped_api(nats_server: NatsServer) -> Iterator[Process]:
    env = {"MAX_SSE_STREAMS": "3", "MAX_SSE_STREAMS_PER_SESSION": "2"}
    process = api(nats_server.url, env=env).start()
    yield process
    process.stop()


async def test_stream_caps_answer_429_per_session_and_503_per_process(capped_api: Process) -> None:
    url = base_url(capped_api)
    async with session(url) as alice, session(url) as bob, session(url) as carol:
        async with SessionStream(alice) as a1, SessionStream(alice) as a2:
            assert (a1.status_code, a2.status_code) == (200, 200)
            over_session = await alice.get("/api/events")
            assert over_session.status_code == 429
            assert over_session.headers["retry-after"] == "5"
            assert over_session.headers["content-type"] == "application/problem+json"
            async with SessionStream(bob) as b1:
                assert b1.status_code == 200
                over_process = await carol.get("/api/events")
                assert over_process.status_code == 503
                assert over_process.headers["retry-after"] == "5"
        # closed streams give their slots back

        async def reopened() -> bool | None:
            async with SessionStream(carol) as c1:
                return True if c1.status_code == 200 else None

        assert await eventually(reopened)


@pytest.fixture(scope="module")
def proxied_api(nats_server: NatsServer) -> Iterator[Process]:
    """An API behind a trusted proxy (this host), 4 streams a client, 10 in all."""
    env = {
        "MAX_SSE_STREAMS": "10",
        "MAX_SSE_STREAMS_PER_CLIENT": "4",
        "TRUSTED_PROXIES": "127.0.0.1",
    }
    process = api(nats_server.url, env=env).start()
    yield process
    process.stop()


async def test_a_client_without_cookies_cannot_take_another_clients_streams(
    proxied_api: Process, reactor_process: Process
) -> None:
    url = base_url(proxied_api)
    mallory = {"X-Forwarded-For": "203.0.113.66"}
    timeout = httpx.Timeout(10.0, read=30.0)
    async with contextlib.AsyncExitStack() as stack:
        # Mallory sends no cookie: every request is a new session. Her client
        # address still fills up at its share, and then she is refused.
        opened = []
        for _ in range(4):
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers=mallory, timeout=timeout)
            )
            stream = await stack.enter_async_context(SessionStream(client))
            opened.append(stream.status_code)
        assert opened == [200] * 4
        async with httpx.AsyncClient(base_url=url, headers=mallory, timeout=timeout) as more:
            refused = await more.get("/api/events")
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "5"
            # Her Prefer: wait is not honoured either (still accepted: a plain 202).
            waited = await post_location(more, unique_name("Mallory"), Prefer="wait=5")
            assert waited.status_code == 202
            assert "preference-applied" not in waited.headers
        # Alice, another client of the same process, still gets hers.
        alice = {"X-Forwarded-For": "198.51.100.7"}
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=url, headers=alice, timeout=timeout)
        )
        async with SessionStream(client) as stream:
            assert stream.status_code == 200
            waited = await post_location(client, unique_name("Alice"), Prefer="wait=5")
            assert waited.status_code == 201
            assert waited.headers["preference-applied"] == "wait=5"


async def test_shutdown_ends_open_streams_within_the_grace_period(nats_server: NatsServer) -> None:
    process = api(nats_server.url).start()
    try:
        async with session(base_url(process)) as client, SessionStream(client) as stream:
            await stream.next()
            started = time.monotonic()
            process.stop(signal.SIGTERM, timeout=30)
            elapsed = time.monotonic() - started
    finally:
        process.kill()
    # uvicorn re-raises SIGTERM once shut down: -15, not -9 (killed after the timeout)
    assert process.stop() == -signal.SIGTERM
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s with a stream open"
    assert any("Application shutdown complete" in line for line in process.lines)
    assert not any("ERROR" in line for line in process.lines), process.output()


async def test_shutdown_answers_a_waiting_prefer_wait_with_the_plain_202(
    nats_server: NatsServer,
) -> None:
    """It held the shutdown for uvicorn's 5 s, then was cancelled: a 500 in plain text
    for a command that was accepted, whose retry without a key made a second one."""
    process = api(nats_server.url).start()
    try:
        async with session(base_url(process)) as client:
            waiting = asyncio.create_task(
                post_location(
                    client, unique_name("Stopping"), Prefer="wait=25", **{"X-Simulate-Delay": "20"}
                )
            )

            async def registered() -> bool | None:
                metrics = (await client.get("/metrics")).text
                return True if "notify_relay_waiters 1.0" in metrics else None

            await eventually(registered)
            await asyncio.to_thread(process.stop, signal.SIGTERM, 30)
            answer = await waiting
    finally:
        process.kill()
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"
    assert answer.headers["preference-applied"] == "wait=25"
    assert not any("ERROR" in line for line in process.lines), process.output()


async def test_an_expired_cursor_gets_reset(fresh_stack: Stack) -> None:
    async with session(fresh_stack.url) as client:
        async with SessionStream(client) as stream:
            old_cursor = (await stream.next()).id
            for _ in range(3):
                await submit(client)
            seen = await stream.notices(3)
        # Retention removed the older notices (as max_age would after 7 days).
        nc = await connect_test_client(fresh_stack.server.url)
        js: JetStreamContext = nc.jetstream()
        await js.purge_stream(NOTICES_STREAM, seq=position_of(client, seen[-1]))
        await nc.close()
        async with SessionStream(client, last_event_id=old_cursor) as stream:
            reset = await stream.next()
        assert reset.event == "reset"
        assert json.loads(reset.data)["reason"] == "event id older than the notices still kept"
        async with SessionStream(client, last_event_id=seen[-2].id) as stream:
            (kept,) = await stream.notices(1)  # a cursor at the retention edge still resumes
        assert kept.id == seen[-1].id


async def test_twenty_sessions_fifty_commands_each_get_exactly_their_own(
    api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)

    async def one_session() -> tuple[list[str], list[str]]:
        async with session(url) as client, SessionStream(client) as stream:
            await stream.next()
            sent = await asyncio.gather(*(submit(client) for _ in range(50)))
            received = [command_id_of(e) for e in await stream.notices(50, within=60)]
            with pytest.raises(TimeoutError):
                await stream.next(within=0.3)
            return list(sent), received

    results = await asyncio.gather(*(one_session() for _ in range(20)))
    for sent, received in results:
        assert len(received) == len(set(received)) == 50  # none twice
        assert set(received) == set(sent)  # none missing, none foreign


async def every_stream_closed(client: httpx.AsyncClient) -> bool | None:
    """True once the API's /metrics counts no open event stream (None before: poll again)."""
    metrics = (await client.get("/metrics")).text
    return True if "notify_sse_streams_open 0.0\n" in metrics else None


async def test_clients_that_leave_mid_wait_leave_nothing_behind(nats_server: NatsServer) -> None:
    process = api(nats_server.url).start()
    try:
        async with session(base_url(process)) as client:
            command_id = await submit(client)  # no reactor here: it stays pending
            for _ in range(5):
                async with SessionStream(client) as stream:
                    await stream.next()
                async with client.stream("GET", f"/api/commands/{command_id}/events") as response:
                    await response.aiter_bytes().__anext__()  # connected, then gone

            await eventually(lambda: every_stream_closed(client))
    finally:
        process.stop()
    assert not any("Task was destroyed but it is pending" in line for line in process.lines), (
        process.output()
    )


async def test_an_idle_stream_is_kept_alive_by_pings_and_a_head_request_opens_none(
    tmp_path: Path,
) -> None:
    # A server of its own: the session's server has reactors of other tests on it,
    # which would answer the command and end the stream.
    server = NatsServer(tmp_path / "store").start()
    process = api(server.url, env={"SSE_PING": "0.2"}).start()
    try:
        async with session(base_url(process)) as client:
            command_id = await submit(client)  # no reactor here: it stays pending
            url = f"/api/commands/{command_id}/events?timeout=30"
            async with client.stream("GET", url) as response:
                lines = response.aiter_lines()
                pings = 0
                async with asyncio.timeout(10):
                    while pings < 3:
                        pings += (await lines.__anext__()).startswith(": ping")
            head = await client.head(url)
            assert head.status_code == 200
            assert head.headers["content-type"].startswith("text/event-stream")
            assert head.content == b""

            await eventually(lambda: every_stream_closed(client))
    finally:
        process.stop()
        server.stop()
