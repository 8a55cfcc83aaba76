"""The whole path as a user meets it: POST -> reactor -> notice over SSE -> GET."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from openapi_spec_validator import validate

from contracts.topology import COMMANDS_STREAM
from tests.e2e.sse import JSON, command_events, post_location
from tests.helpers import eventually, stream_messages, unique_name
from tests.processes import Process, Stack, base_url


async def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "pending"
    assert (
        response.headers["location"] == body["status_url"] == f"/api/commands/{body['command_id']}"
    )
    assert body["events_url"] == f"/api/commands/{body['command_id']}/events"
    return body


async def test_post_then_succeeded_over_sse_then_get(client: httpx.AsyncClient) -> None:
    name = unique_name("Leeds")
    body = await accepted(await post_location(client, name))
    events = await command_events(client, body["command_id"])
    assert [e.event for e in events] == ["succeeded"]
    notice = json.loads(events[0].data)
    assert notice["command_id"] == body["command_id"]
    assert notice["resource"]["name"] == name
    assert re.fullmatch("[0-9a-f]{16}", events[0].id)  # an opaque position
    location = notice["resource"]
    assert notice["actions"][0]["href"] == f"/locations/{location['id']}"
    got = await client.get(notice["resource_url"])
    assert got.status_code == 200
    assert got.json() == location


async def test_a_late_subscriber_gets_the_stored_outcome_at_once(client: httpx.AsyncClient) -> None:
    body = await accepted(await post_location(client, unique_name()))

    async def done() -> dict[str, Any] | None:
        status = (await client.get(body["status_url"])).json()
        return status if status["status"] != "pending" else None

    status = await eventually(done)
    assert status["status"] == "succeeded"
    events = await command_events(client, body["command_id"])
    assert [e.event for e in events] == ["succeeded"]
    assert json.loads(events[0].data) == status


async def test_a_taken_name_fails_with_a_conflict_whatever_its_case(
    client: httpx.AsyncClient,
) -> None:
    name = unique_name("Whitby")
    first = await accepted(await post_location(client, name))
    assert [e.event for e in await command_events(client, first["command_id"])] == ["succeeded"]
    second = await accepted(await post_location(client, f"  {name.upper()} "))
    events = await command_events(client, second["command_id"])
    assert [e.event for e in events] == ["failed"]
    error = json.loads(events[0].data)["error"]
    assert error["status"] == 409
    assert error["title"] == "Name already taken"
    status = (await client.get(second["status_url"])).json()
    assert status["status"] == "failed"
    assert status["error"] == error


async def test_timeout_while_the_reactor_is_down_then_success_when_it_is_back(
    client: httpx.AsyncClient, reactor_process: Process
) -> None:
    reactor_process.stop()
    try:
        body = await accepted(await post_location(client, unique_name("York")))
        events = await command_events(client, body["command_id"], wait_s=1)
        assert [e.event for e in events] == ["timeout"]
        assert json.loads(events[0].data) == {
            "command_id": body["command_id"],
            "status_url": body["status_url"],
        }
        status = (await client.get(body["status_url"])).json()
        assert status["status"] == "pending"
        assert status["completed_at"] is None
    finally:
        reactor_process.start()
    events = await command_events(client, body["command_id"], wait_s=20)
    assert [e.event for e in events] == ["succeeded"]
    assert (await client.get(body["status_url"])).json()["status"] == "succeeded"


async def test_the_stream_is_curl_friendly(client: httpx.AsyncClient) -> None:
    body = await accepted(await post_location(client, unique_name()))
    async with client.stream("GET", body["events_url"]) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        raw = (await response.aread()).decode()
    assert raw.startswith(": stream open")
    assert "\nretry: 2000" in raw
    assert "\nevent: succeeded\n" in raw


BAD_REQUESTS = [
    pytest.param(b"{", JSON, 400, "/problems/malformed-json", id="malformed-json"),
    pytest.param(
        b'{"name":"","category":"Village"}', JSON, 422, "/problems/validation", id="schema"
    ),
    pytest.param(
        b'{"name":"A","category":"City"}',
        {"content-type": "text/plain"},
        415,
        "/problems/unsupported-media-type",
        id="content-type",
    ),
    pytest.param(
        b'{"name":"A","category":"City"}',
        {},
        415,
        "/problems/unsupported-media-type",
        id="no-content-type",
    ),
    pytest.param(  # JSON is UTF-8 (RFC 8259): it was decoded as UTF-8 whatever it said
        '{"name":"Zürich","category":"City"}'.encode("latin-1"),
        {"content-type": "application/json; charset=latin-1"},
        415,
        "/problems/unsupported-media-type",
        id="charset-latin-1",
    ),
    pytest.param(
        b'{"name":"A","category":"City","description":"' + b"x" * 70_000 + b'"}',
        JSON,
        413,
        "/problems/body-too-large",
        id="too-large",
    ),
    pytest.param(
        b'{"name":"A","category":"City"}',
        {**JSON, "x-simulate-delay": "lots"},
        422,
        "/problems/validation",
        id="bad-delay-header",
    ),
]


@pytest.mark.parametrize(("body", "headers", "status", "problem_type"), BAD_REQUESTS)
async def test_bad_input_gets_a_problem_and_publishes_nothing(
    client: httpx.AsyncClient,
    js: JetStreamContext,
    body: bytes,
    headers: dict[str, str],
    status: int,
    problem_type: str,
) -> None:
    before = await stream_messages(js, COMMANDS_STREAM)
    response = await client.post("/api/locations", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == problem_type
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert await stream_messages(js, COMMANDS_STREAM) == before


async def test_validation_problem_lists_every_field_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/locations", content=b'{"name":"  ","category":"Village","extra":1}', headers=JSON
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": "$.name", "msg": "must not be empty"},
        {
            "loc": "$.category",
            "msg": "must be one of: Town, City, County/Region, Country, Continent",
        },
        {"loc": "$.extra", "msg": "is not a known field"},
    ]


@pytest.mark.parametrize(
    ("collection", "field", "body"),
    [
        ("locations", "name", {"name": "Le\u200beds", "category": "City"}),  # a second Leeds
        ("locations", "name", {"name": "Evil\u202eName", "category": "City"}),
        ("locations", "name", {"name": "Two\nlines", "category": "Town"}),
        ("accounts", "holder", {"holder": "Holder\u202e"}),
    ],
)
async def test_names_with_invisible_or_control_characters_are_refused(
    client: httpx.AsyncClient,
    js: JetStreamContext,
    collection: str,
    field: str,
    body: dict[str, str],
) -> None:
    """A zero-width space made a second "Leeds" that looks the same, past the name's
    uniqueness; a bidirectional override or a line break went into notices and pages."""
    before = await stream_messages(js, COMMANDS_STREAM)
    response = await client.post(f"/api/{collection}", json=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"loc": f"$.{field}", "msg": "must not contain control characters"}
    ]
    assert await stream_messages(js, COMMANDS_STREAM) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/commands/" + "0" * 32,
        "/api/commands/" + "0" * 32 + "/events",
        "/api/commands/not-an-id",
        "/api/commands/cmd.*.%3E",
        "/api/locations/" + "0" * 24,
        "/api/locations/nope",
        "/api/widgets/1",
        "/api/locations/",  # was a 307 to a URL made from the Host header
        "/api/shipments/%2F",
    ],
)
async def test_unknown_things_are_404_problems(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"Host": "elsewhere.example"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/not-found"  # an unknown route's: about:blank


async def test_unknown_collection_post_is_404_and_publishes_nothing(
    client: httpx.AsyncClient, js: JetStreamContext
) -> None:
    before = await stream_messages(js, COMMANDS_STREAM)
    response = await client.post("/api/widgets", json={"name": "x"}, headers=JSON)
    assert response.status_code == 404
    slashed = await client.post("/api/locations/", json={"name": "x", "category": "Town"})
    assert slashed.status_code == 404  # not a 307 the client follows with its POST
    assert await stream_messages(js, COMMANDS_STREAM) == before


async def test_event_stream_timeout_parameter_is_validated(client: httpx.AsyncClient) -> None:
    body = await accepted(await post_location(client, unique_name()))
    for bad in ("0", "-1", "abc", "301"):
        response = await client.get(body["events_url"], params={"timeout": bad})
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["loc"] == "query.timeout"


async def test_list_is_newest_first_and_limited(client: httpx.AsyncClient) -> None:
    names = [unique_name("Order") for _ in range(3)]
    for name in names:
        body = await accepted(await post_location(client, name))
        assert [e.event for e in await command_events(client, body["command_id"])] == ["succeeded"]
    listed = (await client.get("/api/locations", params={"limit": "3"})).json()
    assert [item["name"] for item in listed["items"]] == list(reversed(names))
    bad = await client.get("/api/locations", params={"limit": "0"})
    assert bad.status_code == 422


async def test_session_cookie_is_set_once_and_http_only(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("sid=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    again = await client.get("/healthz")  # the client sends the cookie back
    assert "set-cookie" not in again.headers


async def test_web_page_and_operations_endpoints(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert 'id="page"' in page.text
    for deep_link in ("/locations", "/locations/" + "0" * 24):
        linked = await client.get(deep_link)
        assert linked.status_code == 200
        assert linked.text == page.text
    manifest = (await client.get("/app/manifest.json")).json()
    (page_entry,) = [p for p in manifest["pages"] if p["name"] == "locations"]
    assert page_entry["path"] == "/locations"
    assert page_entry["module"] == "/domains/locations/page.js"
    module = await client.get("/domains/locations/page.js")
    assert module.status_code == 200
    assert "export async function render" in module.text
    script = await client.get("/static/commands.js")
    assert "EventSource" in script.text
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    metrics = (await client.get("/metrics")).text
    assert "notify_relay_waiters" in metrics


async def test_metrics_show_each_hop_the_lag_and_dead_letters(client: httpx.AsyncClient) -> None:
    created = await post_location(client, unique_name("Metered"), Prefer="wait=5")
    assert created.status_code == 201  # its notice came through this API's relay
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for hop in ("accept", "publish", "to_reactor", "decide", "append", "views", "notice", "relay"):
        assert f'notify_hop_seconds_count{{domain="locations",hop="{hop}"}}' in text, hop
    assert "notify_nats_up 1.0" in text
    assert "notify_commands_pending " in text
    assert 'notify_deadletters{domain="locations"}' in text
    assert 'notify_view_behind_events{domain="locations",view="location_stats"}' in text


async def test_openapi_and_its_docs_page_are_served(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    validate(doc)
    assert "/api/locations" in doc["paths"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in docs.text
    bundle = await client.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert "SwaggerUIBundle" in bundle.text


async def test_stats_count_locations_per_category(client: httpx.AsyncClient) -> None:
    before = (await client.get("/api/locations/stats")).json()
    assert set(before["categories"]) == {"Town", "City", "County/Region", "Country", "Continent"}
    body = await accepted(await post_location(client, unique_name(), category="Continent"))
    (event,) = await command_events(client, body["command_id"])
    position = json.loads(event.data)["position"]
    # The counts are an async view: min_position waits until it has counted this command.
    after = (await client.get("/api/locations/stats", params={"min_position": position})).json()
    assert after["categories"]["Continent"] >= before["categories"]["Continent"] + 1
    assert after["total"] >= before["total"] + 1


@pytest.mark.parametrize("bad", ["-1", "abc", "\u00b2", "1" * 19, "99999999999999"])
async def test_min_position_must_be_a_position_in_the_store(
    client: httpx.AsyncClient, bad: str
) -> None:
    response = await client.get("/api/locations/stats", params={"min_position": bad})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "query.min_position"


async def test_a_thousand_locations_page_through_each_exactly_once(
    fresh_stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=30) as client:
        gate = asyncio.Semaphore(100)

        async def create() -> str:
            async with gate:
                return await _created(client, unique_name("Paged"))

        created = await asyncio.gather(*(create() for _ in range(1000)))
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {"limit": "200"} if cursor is None else {"limit": "200", "cursor": cursor}
            page = (await client.get("/api/locations", params=params)).json()
            seen += [item["id"] for item in page["items"]]
            pages += 1
            # A location made while paging is newer: it never shifts a later page.
            if pages == 2:
                await _created(client, unique_name("Meanwhile"))
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert sorted(seen) == sorted(created)
    assert len(seen) == len(set(seen)) == 1000
    assert seen == sorted(seen, reverse=True)  # newest first


async def _created(client: httpx.AsyncClient, name: str) -> str:
    """Create a location and wait for it; its id."""
    response = await post_location(client, name, Prefer="wait=10")
    if response.status_code == 201:
        return str(response.json()["id"])
    body = await accepted(response)  # the wait ran out first: follow the command

    async def done() -> dict[str, Any] | None:
        status: dict[str, Any] = (await client.get(body["status_url"])).json()
        return status if status["status"] != "pending" else None

    status = await eventually(done, within=30)
    assert status["status"] == "succeeded", status
    return str(status["resource"]["id"])


async def test_the_ready_line_says_the_port_really_listened_on(api_process: Process) -> None:
    # The API runs with API_PORT=0: the line must carry the port it got, and come
    # only once uvicorn listens (never for a server that then failed to bind).
    async def ready_lines() -> list[str] | None:
        return [line for line in api_process.lines if "API ready: open" in line] or None

    [ready] = await eventually(ready_lines, within=5)
    assert ready.endswith(f"API ready: open {base_url(api_process)}")
    running = next(i for i, line in enumerate(api_process.lines) if "Uvicorn running" in line)
    assert api_process.lines.index(ready) > running
