"""Shipments and accounting as a client meets them: HTTP and SSE against real processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from contracts.topology import COMMANDS_STREAM
from tests.e2e.sse import SessionStream
from tests.helpers import stream_messages, unique_name
from tests.processes import Process, base_url

WAIT = {"Prefer": "wait=10"}


@pytest.fixture
async def browser(
    api_process: Process, reactor_process: Process
) -> AsyncIterator[httpx.AsyncClient]:
    """One browser session (a cookie jar of its own)."""
    url = base_url(api_process)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=30)) as client:
        assert "sid" in (await client.get("/healthz")).cookies
        yield client


async def open_account(client: httpx.AsyncClient, holder: str = "Ada") -> dict[str, Any]:
    response = await client.post("/api/accounts", json={"holder": holder}, headers=WAIT)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_shipment(
    client: httpx.AsyncClient, account_id: str, weight: int = 1200, route: str = "GBFR"
) -> dict[str, Any]:
    body = {
        "account_id": account_id,
        "origin": route[:2],
        "destination": route[2:],
        "weight_grams": weight,
    }
    response = await client.post("/api/shipments", json=body, headers=WAIT)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def act(client: httpx.AsyncClient, shipment_id: str, action: str) -> httpx.Response:
    return await client.post(f"/api/shipments/{shipment_id}/{action}", json={}, headers=WAIT)


async def test_a_delivery_charges_the_account_and_the_session_hears_both(
    browser: httpx.AsyncClient,
) -> None:
    account = await open_account(browser, "Grace")
    assert (account["holder"], account["balance"], account["ledger"]) == ("Grace", 0, [])
    shipment = await create_shipment(browser, account["id"], weight=1200, route="GBFR")
    assert (shipment["status"], shipment["price"]) == ("created", 350 + 3 * 450)
    shipped = await act(browser, shipment["id"], "ship")
    assert shipped.status_code == 200
    assert shipped.json()["status"] == "shipped"

    async with SessionStream(browser) as stream:
        await stream.next()  # connected
        accepted = await browser.post(f"/api/shipments/{shipment['id']}/deliver", json={})
        assert accepted.status_code == 202
        deliver_id = accepted.json()["command_id"]
        notices = [json.loads(e.data) for e in await stream.notices(2)]
    delivered, charged = notices
    assert (delivered["type"], delivered["command_id"]) == ("DeliverShipment", deliver_id)
    assert delivered["resource"]["status"] == "delivered"
    assert [s["status"] for s in delivered["resource"]["history"]] == [
        "created",
        "shipped",
        "delivered",
    ]
    assert charged["type"] == "ChargeAccount"
    assert charged["status"] == "succeeded"
    assert charged["caused_by"] == deliver_id
    assert charged["resource"]["id"] == account["id"]

    after = (await browser.get(f"/api/accounts/{account['id']}")).json()
    assert after["balance"] == shipment["price"]
    assert [(e["kind"], e["amount"], e["reference"]) for e in after["ledger"]] == [
        ("charge", shipment["price"], shipment["id"])
    ]
    assert after["position"] == charged["position"]  # the balance carries its checkpoint


async def test_a_transition_out_of_order_is_a_409_naming_the_state(
    browser: httpx.AsyncClient,
) -> None:
    account = await open_account(browser)
    shipment = await create_shipment(browser, account["id"])
    refused = await act(browser, shipment["id"], "deliver")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "The shipment is created" in refused.json()["detail"]
    assert (await act(browser, shipment["id"], "cancel")).json()["status"] == "cancelled"
    again = await act(browser, shipment["id"], "ship")
    assert again.status_code == 409
    assert "The shipment is cancelled" in again.json()["detail"]


async def test_an_unknown_account_is_422_and_nothing_is_published(
    browser: httpx.AsyncClient, js: JetStreamContext
) -> None:
    before = await stream_messages(js, COMMANDS_STREAM)
    body = {"account_id": "no-such-account", "origin": "GB", "destination": "GB", "weight_grams": 5}
    response = await browser.post("/api/shipments", json=body)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"loc": "$.account_id", "msg": "is not an open account"}]
    assert response.json()["detail"].endswith(": $.account_id: is not an open account")
    assert await stream_messages(js, COMMANDS_STREAM) == before


async def test_a_country_that_is_not_one_is_422_and_nothing_is_published(
    browser: httpx.AsyncClient, js: JetStreamContext
) -> None:
    """Any two capitals passed: "ZZ" to "QQ" was priced as abroad, and so was "UK" (for
    GB) to GB, at home."""
    account = await open_account(browser)
    before = await stream_messages(js, COMMANDS_STREAM)
    body = {"account_id": account["id"], "origin": "UK", "destination": "ZZ", "weight_grams": 5}
    response = await browser.post("/api/shipments", json=body)
    assert response.status_code == 422, response.text
    said = "is not a country's code (ISO 3166-1: the United Kingdom is GB)"
    assert response.json()["errors"] == [
        {"loc": "$.origin", "msg": said},
        {"loc": "$.destination", "msg": said},
    ]
    assert await stream_messages(js, COMMANDS_STREAM) == before


async def test_ship_and_cancel_at_once_exactly_one_wins_each_time(
    browser: httpx.AsyncClient,
) -> None:
    account = await open_account(browser)
    # Ten waits at a time: a session's Prefer waits share its 16 stream slots.
    gate = asyncio.Semaphore(10)

    async def created() -> dict[str, Any]:
        async with gate:
            return await create_shipment(browser, account["id"])

    shipments = await asyncio.gather(*(created() for _ in range(100)))
    for shipment in shipments:
        ship, cancel = await asyncio.gather(
            act(browser, shipment["id"], "ship"), act(browser, shipment["id"], "cancel")
        )
        assert sorted([ship.status_code, cancel.status_code]) == [200, 409], (
            ship.text,
            cancel.text,
        )
        winner = ship if ship.status_code == 200 else cancel
        final = (await browser.get(f"/api/shipments/{shipment['id']}")).json()
        assert final["status"] == winner.json()["status"]
        assert len(final["history"]) == 2


async def test_shipments_list_by_status_and_account_page_by_page(
    browser: httpx.AsyncClient,
) -> None:
    mine, other = await open_account(browser, "Mine"), await open_account(browser, "Other")
    made = [await create_shipment(browser, mine["id"]) for _ in range(5)]
    await create_shipment(browser, other["id"])
    for shipment in made[:3]:
        assert (await act(browser, shipment["id"], "ship")).status_code == 200
    seen: list[str] = []
    cursor = None
    while True:
        params = {"account_id": mine["id"], "status": "shipped", "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        page = (await browser.get("/api/shipments", params=params)).json()
        assert all(
            s["status"] == "shipped" and s["account_id"] == mine["id"] for s in page["items"]
        )
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(s["id"] for s in made[:3])
    listed = (await browser.get("/api/shipments", params={"account_id": mine["id"]})).json()
    assert [s["id"] for s in listed["items"]] == [s["id"] for s in reversed(made)]
    bad = await browser.get("/api/shipments", params={"status": ""})
    assert bad.status_code == 422
    bogus = await browser.get("/api/shipments", params={"status": "lost"})  # was 200, empty
    assert bogus.status_code == 422
    assert bogus.json()["errors"] == [
        {"loc": "query.status", "msg": "must be one of: cancelled, created, delivered, shipped"}
    ]


async def test_a_payment_reference_counts_once(browser: httpx.AsyncClient) -> None:
    account = await open_account(browser)
    url = f"/api/accounts/{account['id']}/payments"
    reference = unique_name("bank").replace(" ", "-")
    first = await browser.post(url, json={"amount": 700, "reference": reference}, headers=WAIT)
    assert first.status_code == 200
    assert first.json()["balance"] == -700
    again = await browser.post(url, json={"amount": 700, "reference": reference}, headers=WAIT)
    assert again.status_code == 200  # the same payment again: nothing new
    assert len(again.json()["ledger"]) == 1
    other = await browser.post(url, json={"amount": 900, "reference": reference}, headers=WAIT)
    assert other.status_code == 409
    final = (await browser.get(f"/api/accounts/{account['id']}")).json()
    assert (final["balance"], len(final["ledger"])) == (-700, 1)


async def test_an_accounts_ledger_is_read_whole_page_by_page_its_record_keeps_the_latest(
    browser: httpx.AsyncClient,
) -> None:
    account = await open_account(browser, "Lovelace")
    url = f"/api/accounts/{account['id']}/payments"
    paid = 25  # more than the record keeps (LEDGER_KEPT, 20)
    for n in range(paid):
        body = {"amount": 100 + n, "reference": f"bank-{n:02d}"}
        answer = await browser.post(url, json=body, headers=WAIT)
        assert answer.status_code == 200, answer.text
    record = (await browser.get(f"/api/accounts/{account['id']}")).json()
    position = str(record["position"])  # the ledger is folded after the fact: as far as this
    assert (record["entries"], record["balance"]) == (paid, -sum(100 + n for n in range(paid)))
    assert [e["reference"] for e in record["ledger"]] == [f"bank-{n:02d}" for n in range(5, 25)]
    references: list[str] = []
    cursor = None
    while True:
        params = {"limit": "10", "min_position": position, **({"cursor": cursor} if cursor else {})}
        page = await browser.get(f"/api/accounts/{account['id']}/ledger", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        references += [e["reference"] for e in body["items"]]
        assert all(e["account_id"] == account["id"] for e in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert references == [f"bank-{n:02d}" for n in reversed(range(paid))]  # newest first
    other = await open_account(browser, "Babbage")  # its ledger is its own
    empty = (await browser.get(f"/api/accounts/{other['id']}/ledger")).json()
    assert (empty["items"], empty["next_cursor"]) == ([], None)
    elsewhere = f"{account['id']}.000000000001"  # a cursor of another account's ledger
    crossed = await browser.get(f"/api/accounts/{other['id']}/ledger", params={"cursor": elsewhere})
    assert crossed.status_code == 422
    assert "cursor" in crossed.text
    missing = await browser.get("/api/accounts/nobody/ledger")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    bad = await browser.get(f"/api/accounts/{account['id']}/ledger", params={"limit": "0"})
    assert bad.status_code == 422
