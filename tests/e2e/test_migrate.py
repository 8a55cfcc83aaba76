"""A store written by the previous version (views built from commands, no EVENTS)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
from nats.js import JetStreamContext

from tests.conftest import connect_test_client
from tests.e2e.sse import post_location
from tests.helpers import eventually
from tests.processes import NatsServer, Process, api, base_url, reactor, run_module

OLD = [
    {
        "id": "019a0000000000aaaaaaaaaa",
        "name": "Leeds",
        "category": "City",
        "description": "West Yorkshire",
        "created_at": "2025-01-02T03:04:05.123000Z",
    },
    {
        "id": "019a0000000001bbbbbbbbbb",
        "name": "Whitby",
        "category": "Town",
        "description": "",
        "created_at": "2025-01-03T03:04:05Z",
    },
]


async def write_previous_version(js: JetStreamContext) -> None:
    """What the previous version left: its buckets, in version 2 after one rebuild."""
    pointer = await js.create_key_value(bucket="projections")
    await pointer.put("active", b'{"version": 2}')
    stale = await js.create_key_value(bucket="locations")  # version 1, superseded
    await stale.put("019a0000000009ffffffffff", json.dumps({**OLD[0], "name": "Stale"}).encode())
    live = await js.create_key_value(bucket="locations_v2")
    for record in OLD:
        await live.put(record["id"], json.dumps(record).encode())
    await js.create_key_value(bucket="location_names")
    await js.create_key_value(bucket="location_stats_v2")


async def test_the_processes_refuse_an_old_store_and_migrate_moves_it(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "store").start()
    try:
        nc = await connect_test_client(server.url)
        await write_previous_version(nc.jetstream())
        await nc.close()

        for process in (api(server.url), reactor(server.url)):
            code = await asyncio.to_thread(_exit_code_of, process)
            assert code == 1, process.output()
            lines = "\n".join(process.lines)
            assert "written by the previous version" in lines
            assert "task migrate" in lines
            assert "Traceback" not in lines

        moved = await asyncio.to_thread(run_module, server.url, "reactor.migrate")
        assert moved.returncode == 0, moved.stdout + moved.stderr
        assert "2 imported" in moved.stdout
        again = await asyncio.to_thread(run_module, server.url, "reactor.migrate")
        assert "nothing to do" in again.stdout

        the_reactor, the_api = reactor(server.url).start(), api(server.url).start()
        try:
            async with httpx.AsyncClient(base_url=base_url(the_api), timeout=10) as client:
                listed = (await client.get("/api/locations")).json()["items"]
                assert listed == sorted(OLD, key=lambda r: r["id"], reverse=True)
                taken = await post_location(client, "LEEDS", Prefer="wait=5")
                assert taken.status_code == 409  # the names came across as reservations

                async def counted() -> dict[str, int] | None:
                    stats = (await client.get("/api/locations/stats")).json()
                    return stats["categories"] if stats["total"] == 2 else None

                categories = await eventually(counted)
                assert (categories["City"], categories["Town"]) == (1, 1)
        finally:
            the_api.stop()
            the_reactor.stop()
    finally:
        server.stop()


def _exit_code_of(process: Process) -> int | None:
    with contextlib.suppress(RuntimeError):  # it exits instead of becoming ready
        process.start()
    return process.stop()
