"""Delivery guarantees: the session stream, resume, Prefer: wait, Idempotency-Key."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from contracts.lookups import find_notice
from contracts.topology import COMMANDS_STREAM
from tests.e2e.sse import SessionStream, command_events, command_id_of, position_of, post_location
from tests.helpers import eventually, stream_messages, unique_name
from tests.nats_proxy import NatsProxy, behind_proxy
from tests.processes import NatsServer, Process, api, base_url


@pytest.fixture
async def browser(
    api_process: Process, reactor_process: Process
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar: one browser session."""
    async with new_session(base_url(api_process)) as client:
        yield client


@asynccontextmanager
async def new_session(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding the cookie of a session of its own (requests made at once share it)."""
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10.0, read=30.0)) as client:
        assert "sid" in (await client.get("/healthz")).cookies
        yield client


async def submit(client: httpx.AsyncClient, name: str | None = None, **headers: str) -> str:
    response = await post_location(client, name or unique_name(), **headers)
    assert response.status_code == 202, response.text
    command_id: str = response.json()["command_id"]
    return command_id


async def completed(client: httpx.AsyncClient, command_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        status: dict[str, Any] = (await client.get(f"/api/commands/{command_id}")).json()
        return status if status["status"] != "pending" else None

    return await eventually(probe, within=20)


# ---- the session stream ------------------------------------------------------


async def test_session_stream_carries_this_sessions_notices_with_rising_ids(
    browser: httpx.AsyncClient,
) -> None:
    async with SessionStream(browser) as stream:
        connected = await stream.next()
        assert connected.event == "connected"
        assert re.fullmatch("[0-9a-f]{16}", connected.id)  # opaque: no global count in it
        sent = [await submit(browser) for _ in range(3)]
        events = await stream.notices(3)
    assert sorted(command_id_of(e) for e in events) == sorted(sent)
    positions = [position_of(browser, e) for e in events]
    assert positions == sorted(positions)
    assert positions[0] > position_of(browser, connected)


async def test_a_notice_after_the_command_timed_out_still_reaches_the_session(
    browser: httpx.AsyncClient,
) -> None:
    async with SessionStream(browser) as stream:
        await stream.next()  # connected
        command_id = await submit(browser, **{"X-Simulate-Delay": "1.5"})
        assert [e.event for e in await command_events(browser, command_id, wait_s=0.3)] == [
            "timeout"
        ]
        (event,) = await stream.notices(1)
    assert event.event == "succeeded"
    assert command_id_of(event) == command_id


@pytest.fixture
async def proxied_api(
    nats_server: NatsServer, reactor_process: Process
) -> AsyncIterator[tuple[NatsProxy, str]]:
    """An API that reaches NATS through a proxy (which can lose what NATS sends it), and
    its URL."""
    async with behind_proxy(nats_server.port, api) as (proxy, process):
        yield proxy, base_url(process)


async def test_a_live_notice_lost_on_its_way_to_the_api_still_reaches_the_session(
    proxied_api: tuple[NatsProxy, str],
) -> None:
    """Core NATS delivers at most once: the API relays a notice whose live copy it
    never received (it sees the hole in the NOTICES sequence), in order."""
    proxy, url = proxied_api
    async with new_session(url) as client, SessionStream(client) as stream:
        await stream.next()  # connected
        proxy.drop_deliveries("live.notice.", times=1)
        first = await submit(client)
        await completed(client, first)
        second = await submit(client)
        events = await stream.notices(2)
        metrics = (await client.get("/metrics")).text
    assert len(proxy.deliveries_dropped) == 1
    assert [command_id_of(e) for e in events] == [first, second]
    assert "notify_relay_notices_missed_total 1.0" in metrics.splitlines()


async def test_the_last_live_notice_lost_still_reaches_its_waiter(
    proxied_api: tuple[NatsProxy, str],
) -> None:
    """No later notice shows the hole: with waiters and no live notice for a moment,
    the API asks the store for its last sequence."""
    proxy, url = proxied_api
    async with new_session(url) as client:
        proxy.drop_deliveries("live.notice.", times=1)
        # Handled after its stream has looked in the store: only the relay can tell it.
        command_id = await submit(client, **{"X-Simulate-Delay": "0.5"})
        events = await command_events(client, command_id, wait_s=8)
    assert len(proxy.deliveries_dropped) == 1
    assert [e.event for e in events] == ["succeeded"]


async def test_a_waiter_learns_of_a_notice_stored_while_its_api_was_cut_off(
    proxied_api: tuple[NatsProxy, str], js: JetStreamContext
) -> None:
    """The API loses NATS while the reactor goes on: a command's stream still gets the
    notice stored meanwhile, once the API is back (every waiter looks in the store)."""
    proxy, url = proxied_api
    async with new_session(url) as client:
        command_id = await submit(client, **{"X-Simulate-Delay": "1"})
        waiting = asyncio.create_task(command_events(client, command_id, wait_s=20))

        async def registered() -> bool | None:
            metrics = (await client.get("/metrics")).text
            return True if "notify_relay_waiters 1.0" in metrics.splitlines() else None

        await eventually(registered)
        proxy.cut()

        async def stored() -> bool | None:
            return True if await find_notice(js, command_id) is not None else None

        await eventually(stored)
        assert not waiting.done()
        proxy.reopen()
        events = await waiting
    assert [e.event for e in events] == ["succeeded"]


async def test_a_late_subscriber_resumes_from_its_cursor(browser: httpx.AsyncClient) -> None:
    async with SessionStream(browser) as stream:
        cursor = (await stream.next()).id
    sent = [await submit(browser) for _ in range(2)]
    for command_id in sent:
        await completed(browser, command_id)
    async with SessionStream(browser, last_event_id=cursor) as stream:
        events = await stream.notices(2)
    assert [command_id_of(e) for e in events] == sent


async def test_resume_after_a_dropped_connection_loses_nothing_and_repeats_nothing(
    browser: httpx.AsyncClient,
) -> None:
    async with SessionStream(browser) as stream:
        await stream.next()
        first = [await submit(browser) for _ in range(2)]
        seen = await stream.notices(2)
    last_id = seen[-1].id
    while_away = [await submit(browser) for _ in range(2)]
    for command_id in while_away:
        await completed(browser, command_id)
    async with SessionStream(browser, last_event_id=last_id) as stream:
        caught_up = await stream.notices(2)
        live = await submit(browser)
        (live_event,) = await stream.notices(1)
        with pytest.raises(TimeoutError):
            await stream.next(within=0.5)  # and nothing more: no duplicate
    assert sorted(command_id_of(e) for e in seen) == sorted(first)
    assert sorted(command_id_of(e) for e in caught_up) == sorted(while_away)
    assert command_id_of(live_event) == live


@pytest.mark.parametrize("cursor", ["999999999", "not-a-number", "-1"])
async def test_an_unknown_cursor_gets_reset_then_live_notices(
    browser: httpx.AsyncClient, cursor: str
) -> None:
    async with SessionStream(browser, last_event_id=cursor) as stream:
        reset = await stream.next()
        assert reset.event == "reset"
        assert json.loads(reset.data)["reason"] == "unknown event id"
        assert re.fullmatch("[0-9a-f]{16}", reset.id)
        command_id = await submit(browser)
        (event,) = await stream.notices(1)
    assert command_id_of(event) == command_id


async def test_two_sessions_see_only_their_own_notices(
    api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)
    async with (
        new_session(url) as alice,
        new_session(url) as bob,
        SessionStream(alice) as a_stream,
        SessionStream(bob) as b_stream,
    ):
        await a_stream.next()
        await b_stream.next()
        a_sent, b_sent = await asyncio.gather(
            asyncio.gather(*(submit(alice) for _ in range(5))),
            asyncio.gather(*(submit(bob) for _ in range(5))),
        )
        for command_id in [*a_sent, *b_sent]:
            await completed(alice, command_id)
        # A marker submitted after everything completed: a foreign notice would come before it.
        a_marker, b_marker = await submit(alice), await submit(bob)
        a_events = await a_stream.notices(6)
        b_events = await b_stream.notices(6)
    assert sorted(command_id_of(e) for e in a_events) == sorted([*a_sent, a_marker])
    assert sorted(command_id_of(e) for e in b_events) == sorted([*b_sent, b_marker])
    assert command_id_of(a_events[-1]) == a_marker
    assert command_id_of(b_events[-1]) == b_marker


async def test_a_resumed_stream_does_not_leak_another_sessions_notices(
    api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)
    async with new_session(url) as alice, new_session(url) as mallory:
        async with SessionStream(alice) as stream:
            cursor = (await stream.next()).id
        alice_command = await submit(alice)
        await completed(alice, alice_command)
        async with SessionStream(mallory, last_event_id=cursor) as stream:
            reset = await stream.next()  # a position is only ever its own session's
            assert reset.event == "reset"
            mine = await submit(mallory)
            (event,) = await stream.notices(1)
        assert command_id_of(event) == mine


# ---- Prefer: wait ------------------------------------------------------------------


async def test_prefer_wait_answers_201_with_the_resource(browser: httpx.AsyncClient) -> None:
    name = unique_name("Waited")
    response = await post_location(browser, name, Prefer="wait=10")
    assert response.status_code == 201, response.text
    assert response.headers["preference-applied"] == "wait=10"
    resource = response.json()
    assert resource["name"] == name
    assert response.headers["location"] == f"/api/locations/{resource['id']}"
    assert (await browser.get(response.headers["location"])).json() == resource
    # The resource does not say how far EVENTS had got: an async view's read needs it.
    position = int(response.headers["event-position"])
    assert position > 0
    stats = await browser.get(f"/api/locations/stats?min_position={position}")
    assert stats.status_code == 200  # a position past EVENTS' end is 422
    assert stats.json()["categories"]["City"] >= 1  # this location counted


async def test_prefer_wait_answers_the_problem_when_the_command_fails(
    browser: httpx.AsyncClient,
) -> None:
    name = unique_name("Twice")
    assert (await post_location(browser, name, Prefer="wait=10")).status_code == 201
    response = await post_location(browser, name.lower(), Prefer="wait=10")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["preference-applied"] == "wait=10"
    assert response.json()["title"] == "Name already taken"


async def test_prefer_wait_answers_202_when_the_reactor_is_slower(
    browser: httpx.AsyncClient,
) -> None:
    response = await post_location(
        browser, unique_name(), Prefer="wait=1", **{"X-Simulate-Delay": "3"}
    )
    assert response.status_code == 202
    assert response.headers["preference-applied"] == "wait=1"
    assert response.json()["status"] == "pending"
    status = await completed(browser, response.json()["command_id"])
    assert status["status"] == "succeeded"


async def test_prefer_wait_is_capped_at_30_seconds(browser: httpx.AsyncClient) -> None:
    response = await post_location(browser, unique_name(), Prefer="respond-async, wait=3600")
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "wait=30"


# ---- Idempotency-Key -------------------------------------------------------------------


async def test_same_key_and_body_replays_the_first_answer_and_publishes_once(
    browser: httpx.AsyncClient, js: JetStreamContext
) -> None:
    name = unique_name("Once")
    before = await stream_messages(js, COMMANDS_STREAM)
    first = await post_location(browser, name, **{"Idempotency-Key": '"order-1"'})
    again = await post_location(browser, name, **{"Idempotency-Key": '"order-1"'})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await stream_messages(js, COMMANDS_STREAM) == before + 1
    assert (await completed(browser, first.json()["command_id"]))["status"] == "succeeded"


async def test_same_key_with_another_body_is_422(browser: httpx.AsyncClient) -> None:
    assert (
        await post_location(browser, unique_name(), **{"Idempotency-Key": "k-422"})
    ).status_code == 202
    response = await post_location(browser, unique_name(), **{"Idempotency-Key": "k-422"})
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/idempotency-mismatch"


async def test_same_key_while_the_first_request_is_waiting_is_409(
    browser: httpx.AsyncClient, js: JetStreamContext
) -> None:
    name = unique_name("Slow")
    headers = {"Idempotency-Key": "k-409", "Prefer": "wait=5", "X-Simulate-Delay": "1.5"}
    before = await stream_messages(js, COMMANDS_STREAM)
    first = asyncio.create_task(post_location(browser, name, **headers))

    async def published() -> bool | None:
        return True if await stream_messages(js, COMMANDS_STREAM) > before else None

    await eventually(published)  # the first is now waiting on its slow command
    conflict = await post_location(browser, name, **headers)
    assert conflict.status_code == 409
    assert conflict.headers["retry-after"] == "1"
    assert conflict.json()["type"] == "/problems/idempotency-in-flight"
    done = await first
    assert done.status_code == 201
    replay = await post_location(browser, name, **headers)
    assert replay.status_code == 201
    assert replay.json() == done.json()
    assert replay.headers["idempotent-replayed"] == "true"


async def test_keys_belong_to_their_session(api_process: Process, reactor_process: Process) -> None:
    url = base_url(api_process)
    async with new_session(url) as alice, new_session(url) as bob:
        name = unique_name()
        a = await post_location(alice, name, **{"Idempotency-Key": "shared"})
        b = await post_location(bob, name, **{"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 202
    assert a.json()["command_id"] != b.json()["command_id"]


async def test_a_client_that_keeps_no_cookie_has_its_retry_answered_as_the_first(
    api_process: Process, reactor_process: Process, js: JetStreamContext
) -> None:
    """curl without a cookie jar, or a first request whose answer (its cookie with it) was
    lost: a key sent without a session cookie is scoped by the key alone, so its retry
    finds it, with no cookie or with the one the first answer gave; another session's
    key of the same name is another key."""
    url = base_url(api_process)
    name, key = unique_name("Jarless"), uuid.uuid4().hex
    before = await stream_messages(js, COMMANDS_STREAM)
    answers = []
    for _ in range(2):
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as jarless:
            answers.append(await post_location(jarless, name, **{"Idempotency-Key": key}))
    first, again = answers
    assert first.status_code == again.status_code == 202, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    async with httpx.AsyncClient(base_url=url, cookies=first.cookies, timeout=10.0) as kept:
        with_cookie = await post_location(kept, name, **{"Idempotency-Key": key})
    assert with_cookie.status_code == 202
    assert with_cookie.headers["idempotent-replayed"] == "true"
    assert with_cookie.json() == first.json()
    assert await stream_messages(js, COMMANDS_STREAM) == before + 1
    async with new_session(url) as session:
        own = await post_location(session, name, **{"Idempotency-Key": key})
    assert own.status_code == 202
    assert "idempotent-replayed" not in own.headers
    assert own.json()["command_id"] != first.json()["command_id"]


@pytest.mark.parametrize("key", ['""', "has space", "x" * 256])
async def test_a_malformed_key_is_400_and_publishes_nothing(
    browser: httpx.AsyncClient, js: JetStreamContext, key: str
) -> None:
    before = await stream_messages(js, COMMANDS_STREAM)
    response = await post_location(browser, unique_name(), **{"Idempotency-Key": key})
    assert response.status_code == 400
    assert await stream_messages(js, COMMANDS_STREAM) == before
