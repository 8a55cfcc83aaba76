"""One user action followed across processes: a `traceparent` and an `X-Request-ID` sent with a
POST are found in the command, its event and its notice, in the API's and the reactor's JSON
log lines and in `task watch`."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import httpx

from contracts.topology import COMMANDS_STREAM, EVENTS_STREAM, NOTICES_STREAM
from tests.conftest import connect_test_client
from tests.helpers import eventually
from tests.processes import Process, nats_env, own_stack

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def json_lines(process: Process) -> list[dict[str, object]]:
    found = []
    for line in process.lines:
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


async def test_a_trace_and_a_request_id_follow_one_action_everywhere(tmp_path: Path) -> None:
    as_json = {"LOG_FORMAT": "json"}
    with own_stack(tmp_path / "store", api_env=as_json, reactor_env=as_json) as stack:
        watch = Process(
            "watch",
            [sys.executable, "-m", "reactor.watch"],
            env=nats_env(stack.server.url),
            ready=r"watching",
        ).start()
        try:
            request_id = f"req-{uuid.uuid4().hex[:8]}"
            async with httpx.AsyncClient(base_url=stack.url) as client:
                answer = await client.post(
                    "/api/locations",
                    json={"name": f"Traced {uuid.uuid4().hex[:6]}", "category": "City"},
                    headers={"traceparent": PARENT, "X-Request-ID": request_id, "Prefer": "wait=5"},
                )
            assert answer.status_code == 201
            assert answer.headers["x-request-id"] == request_id

            nc = await connect_test_client(stack.server.url)
            js = nc.jetstream()
            for stream, subject in (
                (COMMANDS_STREAM, "cmd.>"),
                (EVENTS_STREAM, "ev.location.>"),
                (NOTICES_STREAM, "notice.>"),
            ):
                stored = await js.get_last_msg(stream, subject)
                assert stored.headers is not None
                assert stored.headers["traceparent"].split("-")[1] == TRACE, stream
            command = json.loads((await js.get_last_msg(COMMANDS_STREAM, "cmd.>")).data or b"{}")
            assert command["traceparent"].split("-")[1] == TRACE
            assert command["correlation_id"] == request_id
            await nc.close()

            async def logged() -> bool | None:
                api = [r for r in json_lines(stack.api) if r.get("trace_id") == TRACE]
                done = [r for r in json_lines(stack.reactor) if r.get("trace_id") == TRACE]
                return True if api and done else None

            await eventually(logged, within=5)
            reactor_line = next(r for r in json_lines(stack.reactor) if r.get("trace_id") == TRACE)
            assert reactor_line["correlation_id"] == request_id
            assert str(reactor_line["message"]).startswith("CreateLocation succeeded")
            api_line = next(r for r in json_lines(stack.api) if r.get("trace_id") == TRACE)
            assert api_line["request_id"] == request_id

            async def watched() -> list[str] | None:
                kinds = {line.split()[1] for line in watch.lines if f"trace={TRACE}" in line}
                return sorted(kinds) if {"command", "event", "notice"} <= kinds else None

            assert await eventually(watched, within=5) == ["command", "event", "notice"]
        finally:
            watch.stop()
