"""Admission: while too many commands wait for a reactor, new ones are refused, not queued.

A stack whose API refuses at a backlog of 3 (COMMAND_BACKLOG_LIMIT): with
its reactor stopped, commands are accepted until three wait, then a new one
gets 503 `/problems/busy` with Retry-After and is not stored, while a
replayed Idempotency-Key is still answered, and a refused one is free to be
retried. Once the reactor is back and
has worked through them, commands are accepted again, and every one that
was accepted succeeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contracts.topology import COMMANDS_STREAM
from tests.conftest import connect_test_client
from tests.e2e.sse import command_events, post_location
from tests.helpers import eventually, stream_messages, unique_name
from tests.processes import Stack, own_stack

LIMIT = 3


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with own_stack(tmp_path / "store", api_env={"COMMAND_BACKLOG_LIMIT": str(LIMIT)}) as own:
        yield own


async def test_a_full_backlog_refuses_new_commands_until_the_reactor_catches_up(
    stack: Stack,
) -> None:
    nc = await connect_test_client(stack.server.url)
    js = nc.jetstream()
    accepted: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
            keyed = {"Idempotency-Key": "admission-1"}
            name = unique_name("Keyed")
            first = await post_location(client, name, **keyed)
            assert first.status_code == 202
            accepted.append(first.json()["command_id"])
            stack.reactor.stop()

            async def refused() -> httpx.Response | None:
                response = await post_location(client, unique_name("Queued"))
                if response.status_code == 202:
                    accepted.append(response.json()["command_id"])
                    return None
                return response

            busy = await eventually(refused)
            assert busy.status_code == 503, busy.text
            assert busy.headers["content-type"] == "application/problem+json"
            assert busy.json()["type"] == "/problems/busy"
            assert 1 <= int(busy.headers["retry-after"]) <= 30
            assert len(accepted) >= LIMIT  # the reactor had done the first, at most
            # Nothing of the refused one was stored: COMMANDS holds the accepted only.
            assert await stream_messages(js, COMMANDS_STREAM) == len(accepted)

            # A keyed command refused busy leaves its key free for the retry (below).
            retried = {"Idempotency-Key": "admission-2"}
            retried_name = unique_name("Retried")
            refused_keyed = await post_location(client, retried_name, **retried)
            assert refused_keyed.status_code == 503, refused_keyed.text
            assert await stream_messages(js, COMMANDS_STREAM) == len(accepted)

            # An accepted command's key is replayed, not refused.
            again = await post_location(client, name, **keyed)
            assert again.status_code == 202
            assert again.headers["idempotent-replayed"] == "true"
            assert again.json()["command_id"] == accepted[0]

            stack.reactor.start()

            async def admitted() -> httpx.Response | None:
                response = await post_location(client, unique_name("After"))
                return response if response.status_code == 202 else None

            accepted.append((await eventually(admitted, within=30)).json()["command_id"])
            # The refused key, retried: a new command, not a replay nor "in progress".
            retry = await post_location(client, retried_name, **retried)
            assert retry.status_code == 202, retry.text
            assert "idempotent-replayed" not in retry.headers
            accepted.append(retry.json()["command_id"])
            for command_id in accepted:
                events = await command_events(client, command_id, wait_s=20)
                assert [e.event for e in events] == ["succeeded"], command_id
    finally:
        await nc.close()
