"""The reactor under faults and load: real reactor processes on a nats-server of their own."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from pathlib import Path

import msgspec
import pytest
from nats.js import JetStreamContext

from contracts.commands import Command
from contracts.lookups import find_notice
from contracts.topology import (
    COMMANDS_STREAM,
    EVENTS_STREAM,
    NOTICES_STREAM,
    REACTOR_CONSUMER,
    RESERVATIONS_BUCKET,
    ensure_topology,
    event_subject,
)
from contracts.views import ViewBuckets
from domains.locations.commands import Category
from tests.conftest import REGISTRY, connect_test_client
from tests.e2e.faults import (
    kill_every_second,
    notices_stored,
    publish_all,
    settled,
    wait_for_notices,
)
from tests.helpers import (
    category_total,
    event_types,
    eventually,
    make_command,
    payload_of,
    publish_command,
)
from tests.nats_proxy import behind_proxy
from tests.processes import NatsServer, Process, Stack, reactor, run_module


def commands(n: int, category: Category = "Continent", delay: float = 0.0) -> list[Command]:
    return [make_command(category=category, delay=delay) for _ in range(n)]


async def counted(js: JetStreamContext, category: Category, n: int) -> None:
    """The async count reaches `n` (and, checked after, goes no further)."""

    async def reached() -> bool | None:
        return True if await category_total(js, category) >= n else None

    await eventually(reached, within=30)


async def test_three_reactors_share_2000_commands_and_count_exactly(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    reactors = [reactor(fresh_server.url).start() for _ in range(3)]
    try:
        batch = commands(2000)
        await publish_all(fresh_js, batch)
        await wait_for_notices(fresh_js, 2000, within=180)
        await settled(fresh_js)
        await counted(fresh_js, "Continent", 2000)  # the async view, folded by one of them
    finally:
        for process in reactors:
            process.stop()
    assert await category_total(fresh_js, "Continent") == 2000
    statuses = await asyncio.gather(*(find_notice(fresh_js, c.command_id) for c in batch[::50]))
    assert all(s is not None and s.notice.status == "succeeded" for s in statuses)


async def test_sigkill_every_second_loses_nothing_and_applies_nothing_twice(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    # The same reactor restarted each time (REACTOR_ID): it takes its jobs back at once.
    env = {"REACTOR_ACK_WAIT": "2", "REACTOR_MAX_ATTEMPTS": "1000", "REACTOR_ID": "victim"}
    victim = reactor(fresh_server.url, env=env).start()
    batch = commands(2000, category="Country")
    # Spread over 5 s, so that the once-a-second kills land while there is work.
    publishing = asyncio.create_task(publish_all(fresh_js, batch, pause=0.25))
    try:
        kills = await kill_every_second(victim, fresh_js, until_notices=2000)
        await publishing
        await settled(fresh_js)
        await counted(fresh_js, "Country", 2000)  # after the last kill's lease runs out
    finally:
        victim.stop()
    assert kills >= 4, f"only {kills} kills: too few to prove anything"

    # Exactly one terminal outcome per command, none re-decided.
    state = (await fresh_js.stream_info(NOTICES_STREAM)).state
    assert state.messages == state.last_seq == 2000
    notices = await asyncio.gather(*(find_notice(fresh_js, c.command_id) for c in batch))
    assert all(n is not None and n.notice.status == "succeeded" for n in notices)

    # Exactly one LocationCreated per command in EVENTS, on its own aggregate.
    events = await event_types(fresh_js)
    assert len(events) == (await fresh_js.stream_info(EVENTS_STREAM)).state.messages == 2000
    assert sorted(events) == sorted(
        (event_subject("location", c.aggregate_id), "LocationCreated") for c in batch
    )

    # The views hold each location once, as the command asked, and count each once.
    buckets = ViewBuckets(fresh_js, 1)
    records = await buckets.records("locations", [c.aggregate_id for c in batch])
    assert len(records) == len(await buckets.keys("locations")) == 2000
    for command in batch:
        state = msgspec.json.decode(records[command.aggregate_id].state)
        assert (state["id"], state["name"]) == (command.aggregate_id, payload_of(command).name)
    assert await category_total(fresh_js, "Country") == 2000

    # And the views rebuilt from EVENTS alone are identical.
    rebuilt = await asyncio.to_thread(
        run_module, fresh_server.url, "reactor.rebuild", "--grace", "0"
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "the rebuilt views equal the old ones" in rebuilt.stdout


async def in_flight(js: JetStreamContext, n: int) -> None:
    async def all_taken() -> bool | None:
        info = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
        return True if info.num_ack_pending == n else None

    await eventually(all_taken)


def handed_back(process: Process, what: str) -> int:
    """How many commands a stopped reactor said it handed back of a kind
    ("unfinished": started; "commands pulled": pulled and not started)."""
    found = (re.search(rf"handed back (\d+) {what}", line) for line in process.lines)
    return sum(int(m.group(1)) for m in found if m)


async def test_sigterm_mid_batch_finishes_in_flight_work(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    first = reactor(fresh_server.url).start()
    batch = commands(20, delay=1.0)
    await publish_all(fresh_js, batch)
    await in_flight(fresh_js, 20)
    started = time.monotonic()
    assert first.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 8
    # What it had started, finished before exiting; what it had pulled and not
    # started yet (the server counts a command taken before the reactor starts
    # it), handed back.
    assert await notices_stored(fresh_js) == 20 - handed_back(first, "commands pulled")
    second = reactor(fresh_server.url).start()  # takes what was handed back, if any
    try:
        await wait_for_notices(fresh_js, 20, within=30)
        await settled(fresh_js)
    finally:
        second.stop()


async def test_sigterm_hands_back_what_it_cannot_finish_in_its_grace(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    first = reactor(fresh_server.url, env={"REACTOR_STOP_GRACE": "0.2"}).start()
    batch = commands(20, delay=3.0)
    await publish_all(fresh_js, batch)
    await in_flight(fresh_js, 20)
    started = time.monotonic()
    assert first.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5  # not the 3 s of simulated work, nor the ack wait
    # Every one handed back: those it had started, and any it had pulled and not
    # started yet (the server counts a command taken before the reactor starts it).
    assert handed_back(first, "unfinished") + handed_back(first, "commands pulled") == 20
    second = reactor(fresh_server.url).start()
    try:
        await wait_for_notices(
            fresh_js, 20, within=30
        )  # nak'ed: redelivered at once, not after 30 s
        await settled(fresh_js)
    finally:
        second.stop()
    notices = await asyncio.gather(*(find_notice(fresh_js, c.command_id) for c in batch))
    assert all(n is not None and n.notice.status == "succeeded" for n in notices)


async def tool(server: NatsServer, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_module, server.url, *args)


async def test_exhausted_command_is_dead_lettered_then_replayed(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    process: Process = reactor(fresh_server.url, env={"REACTOR_MAX_ATTEMPTS": "2"}).start()
    try:
        await fresh_js.delete_key_value(RESERVATIONS_BUCKET)  # every attempt now fails
        command = make_command()
        await publish_command(fresh_js, command)
        failed = await eventually(lambda: find_notice(fresh_js, command.command_id), within=20)
        assert failed.notice.status == "failed"
        assert failed.notice.error is not None
        assert failed.notice.error.title == "Command could not be processed"

        listed = await tool(fresh_server, "reactor.dlq", "list")
        assert listed.returncode == 0, listed.stderr
        assert "exhausted" in listed.stdout
        assert f"cmd.CreateLocation.{command.command_id}" in listed.stdout
        assert "1 dead letter(s)" in listed.stdout

        await ensure_topology(fresh_js, REGISTRY.buckets)  # the outage is over
        replayed = await tool(fresh_server, "reactor.dlq", "replay", "--all")
        assert replayed.returncode == 0, replayed.stderr
        assert f"replayed command {command.command_id}" in replayed.stdout

        async def succeeded() -> bool | None:
            stored = await find_notice(fresh_js, command.command_id)
            return True if stored is not None and stored.notice.status == "succeeded" else None

        await eventually(succeeded, within=20)
        assert "0 dead letter(s)" in (await tool(fresh_server, "reactor.dlq", "list")).stdout
        status = await tool(fresh_server, "reactor.status")
        assert "pending      0" in status.stdout
    finally:
        process.stop()


async def test_poison_is_listed_and_not_replayed(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    process = reactor(fresh_server.url).start()
    try:
        await fresh_js.publish("cmd.CreateLocation.garbage", b"\x00not json")
        command = make_command()
        await publish_command(fresh_js, command)
        await eventually(lambda: find_notice(fresh_js, command.command_id))
        listed = await tool(fresh_server, "reactor.dlq", "list")
        assert "poison" in listed.stdout
        replayed = await tool(fresh_server, "reactor.dlq", "replay", "--all")
        assert "not a command (poison); left in place" in replayed.stdout
        assert sum("dead-lettering" in line for line in process.lines) == 1  # logged once
        # Looked at, it can go (it stayed the stream's 30 days, an alert with it).
        seq = listed.stdout.split()[0]
        both = await tool(fresh_server, "reactor.dlq", "replay", seq, "--all")
        assert both.returncode == 2
        assert "replay takes sequences or --all, not both" in both.stderr
        discarded = await tool(fresh_server, "reactor.dlq", "discard", seq, "99999")
        assert discarded.returncode == 1  # one of them was not there
        assert discarded.stdout.splitlines() == [
            "99999: no such dead letter",
            f"{seq}: discarded (poison)",
        ]
        assert "0 dead letter(s)" in (await tool(fresh_server, "reactor.dlq", "list")).stdout
    finally:
        process.stop()


async def test_purge_refuses_while_the_api_or_a_reactor_is_connected(fresh_stack: Stack) -> None:
    server = fresh_stack.server
    env = {"NATS_MONITOR_URL": server.monitor_url}
    refused = run_module(server.url, "reactor.purge", "--yes", env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "purge: refused: 1 api, 1 reactor connected to NATS; stop them first "
        "(Ctrl-C on `task up`), then purge"
    ]
    nc = await connect_test_client(server.url)
    assert (await nc.jetstream().stream_info(EVENTS_STREAM)).config.name == EVENTS_STREAM
    await nc.close()
    fresh_stack.api.stop()
    fresh_stack.reactor.stop()
    done = run_module(server.url, "reactor.purge", "--yes", env=env)  # nobody connected now
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    deleted = [line.removeprefix("purge: deleted ") for line in done.stdout.splitlines()]
    # Said as it goes, the event store and the command log last: a purge stopped half way
    # leaves no view, progress or reservation ahead of the events.
    assert deleted[-3:-1] == [EVENTS_STREAM, COMMANDS_STREAM]
    assert {NOTICES_STREAM, f"KV_{RESERVATIONS_BUCKET}"} <= set(deleted[:-3])
    # A monitoring endpoint that cannot be read is said, not taken for "nobody connected".
    unknown = {"NATS_MONITOR_URL": "http://127.0.0.1:1"}
    again = run_module(server.url, "reactor.purge", "--yes", env=unknown)
    assert again.returncode == 0, again.stderr
    assert again.stderr.startswith("purge: could not ask nats-server at http://127.0.0.1:1")
    assert again.stdout.startswith("purge: nothing to delete")


async def test_a_reactor_whose_server_died_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """Exit status 0 and no traceback: closing a connection whose server is gone made
    nats-py write to a closed transport (RuntimeError under uvloop) on the way out.
    And no stopping step waits out a request's timeout, nor says it will try again: the
    connection is closed at once, failing the requests in flight (nats-py left them to
    their timeouts, and the jobs warned `nats: timeout; again shortly` as they stopped)."""
    server = NatsServer(tmp_path / "store").start()
    the_reactor = reactor(server.url).start()
    try:
        server.kill()

        async def told() -> bool | None:
            return True if any("NATS disconnected" in line for line in the_reactor.lines) else None

        await eventually(told)  # it knows its server is gone (as after any real death)
        before_stop = len(the_reactor.lines)
        status = the_reactor.stop()  # SIGTERM, waited for (SIGKILL only past 15 s)
    finally:
        the_reactor.kill()
        server.stop()
    output = "\n".join(the_reactor.lines)
    assert status == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "reactor stopped" in output
    stopping = "\n".join(the_reactor.lines[before_stop:])
    assert "timeout" not in stopping, stopping
    assert "again" not in stopping, stopping


@pytest.mark.parametrize(
    "write",
    [
        "$KV.reservations.",  # the name's reservation
        "ev.",  # the event
        "$KV.view_locations.",  # the location's record
        "notice.",  # the notice
    ],
)
async def test_a_write_stored_but_not_acknowledged_is_applied_once(
    write: str, fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    """Each write on a command's path is stored but its ack never reaches the reactor
    (a NATS protocol proxy drops it): the command is tried again and succeeds, with
    one reservation, one event, one record and one notice."""
    async with behind_proxy(fresh_server.port, reactor) as (proxy, _):
        proxy.lose_acks(write, times=1)
        command = make_command(category="Town")
        await publish_command(fresh_js, command)
        await wait_for_notices(fresh_js, 1, within=30)
        await settled(fresh_js)
    assert len(proxy.acks_lost) == 1
    assert proxy.acks_lost[0].startswith(write)

    found = await find_notice(fresh_js, command.command_id)
    assert found is not None
    assert found.notice.status == "succeeded"
    assert await notices_stored(fresh_js) == 1
    assert await event_types(fresh_js) == [
        (event_subject("location", command.aggregate_id), "LocationCreated")
    ]
    records = await ViewBuckets(fresh_js, 1).records("locations", [command.aggregate_id])
    state = msgspec.json.decode(records[command.aggregate_id].state)
    assert state["name"] == payload_of(command).name
    reservations = await fresh_js.key_value(RESERVATIONS_BUCKET)
    assert len(await reservations.keys()) == 1
