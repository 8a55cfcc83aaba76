"""Chat channel stats against real processes: HTTP, SSE, and counts checked against a tally
(`bench.chatsim`, what `task chat:simulate` runs) under SIGKILL and with two reactors."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from nats.js import JetStreamContext

from contracts.topology import COMMANDS_STREAM, EVENTS_STREAM, PARTITIONS
from domains.chat import CHANNELS
from tests.helpers import stream_messages
from tests.integration.test_aggregators import holders
from tests.processes import ROOT, NatsServer, Process, api, base_url, reactor, run_module

WAIT = {"Prefer": "wait=10"}


@pytest.fixture
async def client(
    api_process: Process, reactor_process: Process
) -> AsyncIterator[httpx.AsyncClient]:
    url = base_url(api_process)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=30)) as c:
        yield c


def message(channel: str, user: str = "ann", at: datetime | None = None) -> dict[str, str]:
    sent = (at or datetime.now(UTC)).isoformat()
    return {"channel": channel, "user": user, "text": "hello", "sent_at": sent}


async def post(client: httpx.AsyncClient, *messages: dict[str, str]) -> int:
    """Post a batch, wait for its outcome; the position to read it at."""
    response = await client.post("/api/chat/messages", json={"messages": messages}, headers=WAIT)
    assert response.status_code == 200, response.text  # no resource made: its status
    position: int = response.json()["position"]
    return position


async def channel(client: httpx.AsyncClient, name: str, position: int) -> dict[str, Any]:
    response = await client.get(f"/api/chat/channels/{name}", params={"min_position": position})
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


async def test_a_message_older_than_the_grace_is_counted_late_not_dropped(
    client: httpx.AsyncClient,
) -> None:
    name = f"late-{uuid.uuid4().hex[:8]}"
    await post(client, message(name, "ann"), message(name, "bob"))
    position = await post(client, message(name, "cyd", datetime.now(UTC) - timedelta(hours=1)))
    record = await channel(client, name, position)
    assert (record["channel"], record["total"], record["late"]) == (name, 3, 1)
    ((window),) = record["windows"]
    assert (window["count"], window["chatters"]) == (2, 2)  # the late one in no window
    assert set(window) == {"start", "end", "count", "chatters"}


async def test_an_invalid_message_refuses_the_batch_at_its_index_and_publishes_nothing(
    client: httpx.AsyncClient, js: JetStreamContext
) -> None:
    before = await stream_messages(js, COMMANDS_STREAM)
    messages = [message("fine") for _ in range(5)]
    messages[3] = {**messages[3], "channel": "no spaces"}
    response = await client.post("/api/chat/messages", json={"messages": messages})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["loc"] for e in response.json()["errors"]] == ["$.messages[3].channel"]
    future = [message("fine", at=datetime.now(UTC) + timedelta(hours=1))]
    response = await client.post("/api/chat/messages", json={"messages": future})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == ["$.messages[0].sent_at"]
    assert await stream_messages(js, COMMANDS_STREAM) == before


async def test_the_batch_route_takes_a_mebibyte_and_every_other_route_64_kib(
    client: httpx.AsyncClient,
) -> None:
    text = "x" * 400
    big = {"messages": [{**message(f"c{i % 50}"), "text": text} for i in range(1000)]}
    body = json.dumps(big).encode()
    assert 64 * 1024 < len(body) < 1024 * 1024
    headers = {"content-type": "application/json", **WAIT}
    response = await client.post("/api/chat/messages", content=body, headers=headers)
    assert response.status_code == 200, response.text
    over = json.dumps({"messages": [{**message("c"), "text": "y" * 500}] * 2200}).encode()
    response = await client.post("/api/chat/messages", content=over, headers=headers)
    assert response.status_code == 413
    location = {"name": "n" * 70_000, "category": "City"}
    response = await client.post("/api/locations", json=location)
    assert response.status_code == 413


async def test_channels_are_listed_busiest_first_by_cursor_and_followed_live(
    client: httpx.AsyncClient,
) -> None:
    prefix = uuid.uuid4().hex[:6]
    ours = [f"{prefix}-{i}" for i in range(3)]
    batch = [message(c, f"u{j}") for i, c in enumerate(ours) for j in range(2000 * (3 - i))]
    for start in range(0, len(batch), 1000):
        position = await post(client, *batch[start : start + 1000])
    # Page by two through the list (other tests' channels among ours) until ours are all seen.
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 2, "min_position": position}
    while not set(ours) <= {c["channel"] for c in seen}:
        page = (await client.get("/api/chat/channels", params=params)).json()
        seen += page["items"]
        assert page["next_cursor"] is not None or set(ours) <= {c["channel"] for c in seen}
        last = page["items"][-1]
        assert page["next_cursor"] in (None, f"{last['total']}.{last['channel']}")
        params = {"limit": 2, "cursor": page["next_cursor"]}
    order = [(-c["total"], c["channel"]) for c in seen]
    assert order == sorted(order)  # busiest first, ties by name
    assert len({c["channel"] for c in seen}) == len(seen)  # each once
    assert [c["channel"] for c in seen if c["channel"] in ours] == ours
    assert [c["total"] for c in seen if c["channel"] in ours] == [6000, 4000, 2000]

    url = f"/api/chat/channels/{prefix}-2/live"
    async with aconnect_sse(client, "GET", url) as source:
        events = source.aiter_sse()
        current = await anext(e async for e in events if e.event == "state")
        assert json.loads(current.data)["total"] == 2000
        await post(client, message(f"{prefix}-2"), message(f"{prefix}-2"))
        changed = await anext(e async for e in events if e.event == "state")
        assert json.loads(changed.data)["total"] == 2002
        assert int(changed.id) > int(current.id)


# ---- the simulator's tally against real processes, under faults ---------------------------


async def simulate(url: str, *args: str) -> str:
    """Run `task chat:simulate`'s module against the API; its output (it must check out)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.chatsim",
        "--url",
        url,
        "--channels",
        "60",
        "--settle",
        "60",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, text
    assert "equals the tally" in text, text
    return text


def accepted_batches(output: str) -> int:
    found = re.search(r"in ([\d,]+) batches over", output)
    assert found is not None, output
    return int(found.group(1).replace(",", ""))


async def batches_stored(js: JetStreamContext) -> int:
    """Batches in EVENTS: each is its own subject ev.chat.<id> (keyed events have 4 tokens)."""
    info = await js.stream_info(EVENTS_STREAM, subjects_filter="ev.chat.*")
    return len(info.state.subjects or {})


async def test_simulated_traffic_is_counted_exactly_and_a_rebuild_counts_the_same(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    the_reactor, the_api = reactor(fresh_server.url).start(), api(fresh_server.url).start()
    try:
        output = await simulate(base_url(the_api), "--rate", "4000", "--duration", "5")
        assert accepted_batches(output) == await batches_stored(fresh_js)
        assert not re.search(r"\(0 dated late", output)  # some were late, and counted so
        rebuilt = await asyncio.to_thread(
            run_module, fresh_server.url, "reactor.rebuild", "--grace", "0.5"
        )
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert "the rebuilt views equal the old ones" in rebuilt.stdout
        assert re.search(r"chat_channels [1-9]", rebuilt.stdout), rebuilt.stdout
    finally:
        the_api.stop()
        the_reactor.stop()


async def test_a_reactor_sigkilled_every_few_seconds_loses_and_doubles_nothing(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    # The same reactor restarted each time (REACTOR_ID): it takes its partitions back at once.
    env = {"REACTOR_ACK_WAIT": "2", "REACTOR_MAX_ATTEMPTS": "1000", "REACTOR_ID": "victim"}
    victim, the_api = reactor(fresh_server.url, env=env).start(), api(fresh_server.url).start()
    try:
        run = asyncio.create_task(simulate(base_url(the_api), "--rate", "3000", "--duration", "12"))
        kills = 0
        while not run.done():
            await asyncio.wait({run}, timeout=3.0)  # the fault schedule: a SIGKILL every 3 s
            if not run.done():
                victim.kill()
                kills += 1
                await asyncio.to_thread(victim.start)
        output = await run
    finally:
        the_api.stop()
        victim.stop()
    assert kills >= 3, f"only {kills} kills: too few to prove anything"
    assert accepted_batches(output) == await batches_stored(fresh_js)  # none stored twice


async def test_two_reactors_share_the_partitions_and_the_survivor_finishes_the_work(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    one = reactor(fresh_server.url, env={"REACTOR_ID": "one"}).start()
    two = reactor(fresh_server.url, env={"REACTOR_ID": "two"}).start()
    the_api = api(fresh_server.url).start()
    try:
        deadline = time.monotonic() + 20
        while (spread := await holders(fresh_js, CHANNELS)) != {"one": 4, "two": 4}:
            assert time.monotonic() < deadline, spread
            await asyncio.sleep(0.2)
        run = asyncio.create_task(simulate(base_url(the_api), "--rate", "3000", "--duration", "8"))
        await asyncio.sleep(3)
        two.kill()  # mid-run: its partitions' leases run out, "one" takes them over
        await run
        assert await holders(fresh_js, CHANNELS) == {"one": PARTITIONS}
    finally:
        the_api.stop()
        one.stop()
        two.stop()
