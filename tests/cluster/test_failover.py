"""A server of the cluster dies under load: nothing accepted is lost, nothing happens twice.

Two API instances and two reactors on three nats-servers, every stream and
bucket on all three (NATS_REPLICAS=3). While clients create locations and
take shipments through create -> ship -> deliver (each delivery charges an
account through the billing policy), the server leading EVENTS (another time
COMMANDS, another NOTICES) is SIGKILLed, and started again a few seconds
later. Then:
- clients only ever saw 2xx, 503 with Retry-After, or 409 "request in
  progress" (a retry while the key's first request could not hand it over),
  and no request hung;
- every command answered 202 has exactly one outcome, `succeeded`, and no
  event stream waited out its time more than FOUND_WITHIN after the outcome
  was stored (a lost live notice is found by the API's relay, not by the
  client asking again);
- no event was appended twice (each command's events are distinct);
- no view applied an event twice (counts and balances equal the events).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.connection import while_unavailable
from contracts.events import CAUSATION, EVENT_TYPE
from contracts.lookups import find_notice
from contracts.topology import COMMANDS_STREAM, EVENTS_STREAM, NOTICES_STREAM
from domains.accounting.views import LEDGER_KEPT
from domains.shipments.tariff import price
from tests.cluster.conftest import ClusterStack
from tests.e2e.faults import settled
from tests.e2e.sse import command_events
from tests.helpers import eventually, unique_name, view_state

pytestmark = pytest.mark.cluster

ACCOUNTS = 4
LOAD_BEFORE_KILL = 2.0  # seconds of load before the kill,
DOWN_FOR = 4.0  # how long the server stays dead,
LOAD_AFTER = 3.0  # and how much load after it is back
FOUND_WITHIN = 2.5  # seconds: a lost live notice reaches its stream from the store


@dataclass
class Clients:
    """What the clients saw: statuses, anything unexpected, the commands accepted."""

    urls: list[str]
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    turn: itertools.count[int] = field(default_factory=itertools.count)
    # Streams that heard nothing in their wait: the command, when the stream opened and
    # when it ended (to tell a lost notice from a slow command).
    silent: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    def client(self, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
        # The two API instances in turn; a hang shows as a timeout (an error).
        url = self.urls[next(self.turn) % len(self.urls)]
        timeout = httpx.Timeout(15.0, read=30.0)
        return httpx.AsyncClient(base_url=url, timeout=timeout, cookies=cookies)

    async def submit(self, path: str, body: Mapping[str, object]) -> str:
        """POST until accepted, as a careful client does: a 503, or a 409 "request in
        progress", is asked again after its Retry-After, with the same Idempotency-Key
        from the same session (a key is the session's: so it is one command)."""
        key = uuid.uuid4().hex
        session = httpx.Cookies()
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            async with self.client(session) as client:
                response = await client.post(path, json=body, headers={"Idempotency-Key": key})
                session.update(client.cookies)
            self.statuses[response.status_code] += 1
            in_progress = response.status_code == 409 and response.json()["type"].endswith(
                "/idempotency-in-flight"
            )
            if response.status_code == 503 or in_progress:
                retry_after = response.headers.get("retry-after", "")
                if not retry_after.isdigit():
                    self.unexpected.append(f"{response.status_code} without Retry-After")
                await asyncio.sleep(float(retry_after) if retry_after.isdigit() else 1.0)
                continue
            if response.status_code != 202:
                self.unexpected.append(f"POST {path}: {response.status_code} {response.text}")
                raise AssertionError(self.unexpected[-1])
            command_id: str = response.json()["command_id"]
            self.accepted.append(command_id)
            return command_id
        raise AssertionError(f"POST {path} not accepted within 60 s")

    async def outcome(self, command_id: str) -> dict[str, object]:
        """The command's outcome from its event stream (either instance)."""
        for _ in range(30):
            opened = datetime.now(UTC)
            try:
                async with self.client() as client:
                    events = await command_events(client, command_id, wait_s=20)
            except httpx.HTTPStatusError as exc:
                self.statuses[exc.response.status_code] += 1
                retry_after = exc.response.headers.get("retry-after", "")
                if exc.response.status_code != 503 or not retry_after.isdigit():
                    self.unexpected.append(f"events of {command_id}: {exc.response.text}")
                    raise
                await asyncio.sleep(float(retry_after))
                continue
            if events and events[-1].event in ("succeeded", "failed"):
                data: dict[str, object] = json.loads(events[-1].data)
                return data
            # `unavailable` (NATS failed under the stream) or `timeout`: ask again,
            # after the stream's retry hint, as EventSource does.
            if not events or events[-1].event != "unavailable":
                self.silent.append((command_id, opened, datetime.now(UTC)))
            await asyncio.sleep(2.0)
        raise AssertionError(f"no outcome for {command_id}")

    async def do(self, path: str, body: Mapping[str, object]) -> dict[str, object]:
        notice = await self.outcome(await self.submit(path, body))
        assert notice["status"] == "succeeded", notice
        return notice


async def locations(clients: Clients, stop: asyncio.Event) -> list[str]:
    """Locations created until `stop`; their commands."""
    made = []
    while not stop.is_set():
        body = {"name": unique_name(), "category": "Town", "description": "load"}
        made.append(await clients.submit("/api/locations", body))
    return made


async def shipments(clients: Clients, account_id: str, stop: asyncio.Event) -> int:
    """Shipments taken through to delivery, one after another; how many were delivered."""
    delivered = 0
    while not stop.is_set():
        made = await clients.do(
            "/api/shipments",
            {"account_id": account_id, "origin": "GB", "destination": "FR", "weight_grams": 500},
        )
        resource = made["resource"]
        assert isinstance(resource, dict)
        for step in ("ship", "deliver"):
            await clients.do(f"/api/shipments/{resource['id']}/{step}", {})
        delivered += 1
    return delivered


async def all_events(js: JetStreamContext) -> list[Msg]:
    total = (await js.stream_info(EVENTS_STREAM)).state.messages
    sub = await js.subscribe("ev.>", stream=EVENTS_STREAM, ordered_consumer=True)
    try:
        return [await sub.next_msg(timeout=10) for _ in range(total)]
    finally:
        await sub.unsubscribe()


def what_they_saw(cluster: ClusterStack, victim: str) -> str:
    """The warnings of the APIs and reactors, and the servers' leader changes."""
    lines = [f"killed: {victim}"]
    for process in [*cluster.apis, *cluster.reactors]:
        said = [line for line in process.lines if "WARNING" in line or "ERROR" in line]
        lines += [f"[{process.name}] {line}" for line in said[-15:]]
    for server in cluster.nats.servers:
        said = [line for line in server.lines if "leader" in line or "[WRN]" in line]
        lines += [f"[{server.name}] {line}" for line in said[-15:]]
    return "\n".join(lines)


async def read_view(js: JetStreamContext, view: str, key: str) -> Any:
    """A view record, asked again while the test's own client meets NATS
    unavailable: a stream of the healed cluster may elect its leader again as
    the restarted server catches up (what is checked here is the record)."""
    return await while_unavailable(lambda: view_state(js, view, key), within=30, what="a view")


def header(event: Msg, name: str) -> str:
    return (event.headers or {}).get(name, "")


@pytest.mark.parametrize("stream", [EVENTS_STREAM, COMMANDS_STREAM, NOTICES_STREAM])
async def test_a_leader_killed_under_load_loses_nothing_and_repeats_nothing(
    cluster: ClusterStack, cluster_nc: Client, stream: str
) -> None:
    js = cluster_nc.jetstream()
    clients = Clients(cluster.urls)
    opened = [await clients.do("/api/accounts", {"holder": f"holder {i}"}) for i in range(ACCOUNTS)]
    account_ids = [str(a["resource"]["id"]) for a in opened]  # type: ignore[index]

    stop = asyncio.Event()
    creating = [asyncio.create_task(locations(clients, stop)) for _ in range(4)]
    delivering = [asyncio.create_task(shipments(clients, a, stop)) for a in account_ids]
    await asyncio.sleep(LOAD_BEFORE_KILL)  # the fault schedule: load, then the kill
    info = await js.stream_info(stream)
    assert info.cluster is not None
    assert info.cluster.leader is not None
    victim = cluster.nats.named(info.cluster.leader)
    victim.kill()
    await asyncio.sleep(DOWN_FOR)  # the fault schedule: how long it stays dead
    await asyncio.to_thread(victim.restart)
    await asyncio.sleep(LOAD_AFTER)  # the fault schedule: load on the healed cluster
    stop.set()
    try:
        location_commands = [c for made in await asyncio.gather(*creating) for c in made]
        delivered = dict(zip(account_ids, await asyncio.gather(*delivering), strict=True))
    except AssertionError as exc:  # say what the processes saw (a long outage is the news)
        raise AssertionError(f"{exc}\n{what_they_saw(cluster, victim.name)}") from exc

    # What the clients saw: 202, or 503 / 409 in progress with Retry-After; no other
    # status, no hang.
    assert clients.unexpected == []
    assert set(clients.statuses) <= {202, 409, 503}, clients.statuses
    assert all(delivered.values()), delivered  # every account's work went on through it

    # A stream that heard nothing in its wait had no outcome to hear (the command
    # waited out an election), not a lost one: a lost live notice is found from the
    # store within about 2 s.
    async def stored_at(command: str) -> datetime | None:
        found = await find_notice(js, command)
        return (await js.get_msg(NOTICES_STREAM, seq=found.seq)).time if found else None

    lost = []
    for command, began, ended in clients.silent:
        stored = await while_unavailable(partial(stored_at, command), within=30, what="a notice")
        if stored is not None and stored < ended - timedelta(seconds=FOUND_WITHIN):
            lost.append(f"{command}: stored {stored:%T.%f}, waited {began:%T.%f}-{ended:%T.%f}")
    assert lost == []

    # Every accepted command has exactly one outcome, and it is `succeeded`.
    await settled(js)
    outcomes = await asyncio.gather(*(find_notice(js, c) for c in clients.accepted))
    other = [
        f"{command}: {o.notice.status} {o.notice.error}" if o else f"{command}: no outcome"
        for command, o in zip(clients.accepted, outcomes, strict=True)
        if o is None or o.notice.status != "succeeded"
    ]
    assert other == [], f"{len(other)} of {len(outcomes)} did not succeed: {other[:5]}"

    # Each delivery charged its account once (the billing policy, across the fault).
    async def charged() -> list[Msg] | None:
        events = await all_events(js)
        charges = [
            e
            for e in events
            if e.subject.split(".")[2] in delivered and header(e, EVENT_TYPE) == "AccountCharged"
        ]
        return events if len(charges) >= sum(delivered.values()) else None

    events = await eventually(charged, within=30)

    # No event appended twice: one command's events all differ.
    copies = Counter((header(e, CAUSATION), e.subject, e.data) for e in events)
    assert [key for key, n in copies.items() if n > 1] == []
    created = Counter(
        header(e, CAUSATION) for e in events if header(e, EVENT_TYPE) == "LocationCreated"
    )
    assert [created[c] for c in location_commands] == [1] * len(location_commands)

    # No view applied an event twice: what the views hold equals what the events say.
    towns = sum(
        1
        for e in events
        if header(e, EVENT_TYPE) == "LocationCreated" and json.loads(e.data)["category"] == "Town"
    )

    async def towns_counted() -> int | None:
        counted = (await read_view(js, "location_stats", "Town") or {"count": 0})["count"]
        return counted if counted >= towns else None

    assert await eventually(towns_counted, within=30) == towns
    for account_id, count in delivered.items():
        record = await read_view(js, "accounts", account_id)
        references = [entry["reference"] for entry in record["ledger"]]
        assert len(references) == len(set(references)) == min(count, LEDGER_KEPT)
        assert record["entries"] == count
        assert record["balance"] == count * price(500, "GB", "FR")
