"""A domain added as a package and nothing else, driven end to end over HTTP and SSE.

The throwaway domains of `tests.domains` are registered next to the real ones
through the registry parameter the processes' wiring takes; no generic code
knows them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from httpx_sse import aconnect_sse

from contracts.registry import Registry
from domains import DOMAINS
from tests.domains import memos, notes
from tests.e2e.inprocess import stack_in_process
from tests.e2e.sse import SessionStream, command_events
from tests.helpers import eventually
from tests.processes import NatsServer

REGISTRY = Registry([*DOMAINS, notes.DOMAIN, memos.DOMAIN])


@pytest.fixture
async def client(fresh_server: NatsServer) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        stack_in_process(fresh_server.url, REGISTRY) as url,
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=30)) as c,
    ):
        assert "sid" in (await c.get("/healthz")).cookies  # one browser session
        yield c


async def test_a_new_domain_serves_its_command_read_and_notice(
    client: httpx.AsyncClient,
) -> None:
    async with SessionStream(client) as stream:
        assert (await stream.next()).event == "connected"
        accepted = await client.post("/api/notes", json={"text": "buy milk"})
        assert accepted.status_code == 202, accepted.text
        (event,) = await stream.notices(1)
    notice = json.loads(event.data)
    assert notice["command_id"] == accepted.json()["command_id"]
    assert notice["status"] == "succeeded"
    assert notice["type"] == "WriteNote"
    note = notice["resource"]
    assert note["text"] == "buy milk"
    assert notice["resource_url"] == f"/api/notes/{note['id']}"
    assert (await client.get(notice["resource_url"])).json() == note
    listed = (await client.get("/api/notes")).json()
    assert listed["items"] == [note]
    assert listed["next_cursor"] is None
    refused = await client.post("/api/notes", json={"text": ""})
    assert refused.status_code == 422
    assert refused.json()["errors"] == [{"loc": "$.text", "msg": "must not be empty"}]
    assert "/api/notes" in (await client.get("/openapi.json")).json()["paths"]


async def test_a_policy_notice_reaches_the_session_caused_by_the_command(
    client: httpx.AsyncClient,
) -> None:
    async with SessionStream(client) as stream:
        await stream.next()
        written = await client.post("/api/memos", json={"text": "hi", "folder": "work"})
        assert written.status_code == 202
        notices = [json.loads(e.data) for e in await stream.notices(2)]
    by_type = {n["type"]: n for n in notices}
    write_id = written.json()["command_id"]
    assert by_type["WriteMemo"]["command_id"] == write_id
    assert by_type["StampMemo"]["caused_by"] == write_id
    assert by_type["StampMemo"]["status"] == "succeeded"
    memo_id = by_type["WriteMemo"]["resource"]["id"]
    # The async view: read once it has applied the policy's events.
    position = max(n["position"] for n in notices)
    folders = await client.get("/api/memos/folders", params={"min_position": position})
    assert folders.json() == {"folders": {"work": 1}}
    memo = (await client.get(f"/api/memos/{memo_id}")).json()
    assert memo["stamps"] == ["seen"]


async def test_an_action_waits_on_the_server_and_a_rule_refuses_a_repeat(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/memos", json={"text": "x"}, headers={"Prefer": "wait=5"})
    assert created.status_code == 201
    memo_id = created.json()["id"]
    stamped = await client.post(
        f"/api/memos/{memo_id}/stamp", json={"stamp": "ok"}, headers={"Prefer": "wait=5"}
    )
    assert stamped.status_code == 200  # a change, not a new resource
    assert "ok" in stamped.json()["stamps"]
    assert stamped.headers["location"] == f"/api/memos/{memo_id}"
    again = await client.post(
        f"/api/memos/{memo_id}/stamp", json={"stamp": "ok"}, headers={"Prefer": "wait=5"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    missing = await client.post("/api/memos/nope/stamp", json={"stamp": "a"})
    assert missing.status_code == 202
    (event,) = await command_events(client, missing.json()["command_id"])
    assert json.loads(event.data)["error"]["status"] == 404


async def test_a_followable_view_streams_its_record_as_it_changes(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/memos", json={"text": "live"}, headers={"Prefer": "wait=5"})
    memo_id = created.json()["id"]

    async def stamped_by_policy() -> bool | None:
        memo = (await client.get(f"/api/memos/{memo_id}")).json()
        return True if memo["stamps"] == ["seen"] else None

    await eventually(stamped_by_policy)
    async with aconnect_sse(client, "GET", f"/api/memos/{memo_id}/live") as source:
        states = source.aiter_sse()
        first = await anext(states)
        while not first.data:  # the opening retry hint
            first = await anext(states)
        assert first.event == "state"
        assert json.loads(first.data)["stamps"] == ["seen"]
        await client.post(f"/api/memos/{memo_id}/stamp", json={"stamp": "later"})
        second = await anext(states)
    assert json.loads(second.data)["stamps"] == ["seen", "later"]
    assert int(second.id) > int(first.id)
    assert (await client.get("/api/memos/nope/live")).status_code == 404
