"""Hostile input over real HTTP: every refusal is a 4xx problem+json and publishes nothing."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from httpx_sse import aconnect_sse
from nats.js import JetStreamContext

from contracts.topology import COMMANDS_STREAM
from tests.helpers import stream_messages
from tests.processes import Process, base_url

JSON = {"content-type": "application/json"}
SUPERSCRIPT_TWO = "\u00b2".encode()  # a digit to str.isdigit(), not to int()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"name":"\xff\xfe","category":"City"}', "not valid UTF-8"),
        (b"[" * 1000 + b"]" * 1000, "nested too deeply"),
        (b'{"name":' + b"[" * 3000 + b"]" * 3000 + b"}", "nested too deeply"),
    ],
)
async def test_a_body_that_breaks_the_decoder_is_400_and_publishes_nothing(
    client: httpx.AsyncClient, js: JetStreamContext, body: bytes, detail: str
) -> None:
    before = await stream_messages(js, COMMANDS_STREAM)
    response = await client.post("/api/locations", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert await stream_messages(js, COMMANDS_STREAM) == before


@pytest.mark.parametrize("wait", [b"wait=" + SUPERSCRIPT_TWO, b"wait=" + b"9" * 5000])
async def test_a_prefer_wait_that_is_not_a_number_is_ignored(
    client: httpx.AsyncClient, wait: bytes
) -> None:
    body = b'{"name":"Odd wait %s","category":"City"}' % str(len(wait)).encode()
    headers = {b"content-type": b"application/json", b"prefer": wait}
    response = await client.post("/api/locations", content=body, headers=headers)
    assert response.status_code == 202
    assert "preference-applied" not in response.headers


@pytest.mark.parametrize("cursor", [SUPERSCRIPT_TWO, b"9" * 5000])
async def test_a_last_event_id_that_is_not_a_number_resets_the_stream(
    client: httpx.AsyncClient, cursor: bytes
) -> None:
    async with aconnect_sse(client, "GET", "/api/events", headers={"last-event-id": cursor}) as s:
        assert s.response.status_code == 200
        events = s.aiter_sse()
        first = await anext(events)
        while first.event not in ("reset", "connected"):
            first = await anext(events)
        assert first.event == "reset"
        assert json.loads(first.data) == {"reason": "unknown event id"}


async def test_a_405_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/locations")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/method-not-allowed"
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD", "POST"}
    events = await client.post("/api/events")
    assert events.status_code == 405


async def test_another_sites_form_post_does_not_replace_the_session_cookie(
    api_process: Process,
) -> None:
    """A SameSite=Lax cookie is not sent with another site's form POST, but the browser
    keeps a cookie its answer sets: a new session there would sign the visitor out."""
    async with httpx.AsyncClient(base_url=base_url(api_process)) as fresh:
        forged = await fresh.post(
            "/api/locations",
            content=b"name=Selby",
            headers={"content-type": "application/x-www-form-urlencoded", **CROSS_SITE},
        )
        assert forged.status_code == 403
        assert forged.json()["type"] == "/problems/cross-site"
        assert "set-cookie" not in forged.headers
        # A visitor's first page, from another site's link: a session as ever.
        arrived = await fresh.get("/", headers=CROSS_SITE)
        assert arrived.headers["set-cookie"].startswith("sid=")
        fresh.cookies.clear()
        own = await fresh.post(
            "/api/locations",
            content=b"name=Selby",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert own.headers["set-cookie"].startswith("sid=")  # a cookieless request of our own


CROSS_SITE = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_a_write_from_another_sites_page_is_refused_before_it_is_read(
    client: httpx.AsyncClient, site: str
) -> None:
    """A JSON POST from another origin carrying its Sec-Fetch-Site was taken (202): only
    the browser's CORS preflight (answered 405) kept such a page from sending one."""
    name = f"Forged {uuid.uuid4().hex[:8]}"
    body = {"name": name, "category": "Town"}
    forged = await client.post("/api/locations", json=body, headers={"sec-fetch-site": site})
    assert forged.status_code == 403
    assert forged.headers["content-type"] == "application/problem+json"
    assert forged.json()["title"] == "Cross-site request"
    # Its own page's request, and a client that is no browser (no such header), are taken.
    own = await client.post("/api/locations", json=body, headers={"sec-fetch-site": "same-origin"})
    assert own.status_code == 202
    # Reads from anywhere stay open (a link to a record from another site).
    assert (await client.get("/api/locations", headers={"sec-fetch-site": site})).status_code == 200


async def test_api_answers_are_not_stored_by_caches_and_the_page_s_files_may_be(
    client: httpx.AsyncClient,
) -> None:
    """A signed-in user's email (/api/sessions/current) was cacheable."""
    for path in ("/api/locations", "/api/commands/" + "0" * 32, "/api/nowhere"):
        assert (await client.get(path)).headers["cache-control"] == "no-store", path
    assert (await client.get("/static/app.js")).headers.get("cache-control") != "no-store"


async def test_a_session_id_the_client_chose_is_not_taken(api_process: Process) -> None:
    chosen = "c" * 32
    async with httpx.AsyncClient(base_url=base_url(api_process)) as fresh:
        response = await fresh.get("/healthz", headers={"cookie": f"sid={chosen}"})
        issued = response.headers["set-cookie"]
        assert issued.startswith("sid=")
        assert not issued.startswith(f"sid={chosen}")  # a new session, signed by the server
        value = issued.split(";")[0].removeprefix("sid=")
        again = await fresh.get("/healthz", headers={"cookie": f"sid={value}"})
        assert "set-cookie" not in again.headers  # the issued one is kept


async def test_a_json_command_with_no_body_is_an_empty_object(client: httpx.AsyncClient) -> None:
    """`curl -X POST -H 'content-type: application/json' .../ship` got 400 "Input data
    was truncated": a command of no fields needed `-d '{}'`."""
    json_type = {"content-type": "application/json"}
    shipped = await client.post(f"/api/shipments/{uuid.uuid4().hex}/ship", headers=json_type)
    assert shipped.status_code == 202, shipped.text
    created = await client.post("/api/locations", headers=json_type)
    assert created.status_code == 422
    assert {e["loc"] for e in created.json()["errors"]} == {"$.name", "$.category"}
    untyped = await client.post(f"/api/shipments/{uuid.uuid4().hex}/ship")
    assert untyped.status_code == 415  # JSON only: no page of another site sends that
    assert "a command of no fields too" in untyped.json()["detail"]
