"""The reactor under faults and load: real reactor processes on a nats-server of their own."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import msgspec
from nats.js import JetStreamContext

from contracts.commands import Command, CreateLocation
from contracts.lookups import find_notice
from contracts.projections import open_buckets
from contracts.resources import location_decoder
from contracts.topology import (
    COMMANDS_STREAM,
    LOCATION_NAMES_BUCKET,
    LOCATIONS_BUCKET,
    NOTICES_STREAM,
    REACTOR_CONSUMER,
    ensure_topology,
)
from reactor.handlers import Created, create_location
from tests.helpers import category_total, eventually, make_command, publish_command, unique_name
from tests.processes import NatsServer, Process, reactor, run_module


def commands(n: int, category: str = "Continent", delay: float = 0.0) -> list[Command]:
    made = []
    for _ in range(n):
        command = make_command(unique_name())
        payload = CreateLocation(name=command.payload.name, category=category)  # type: ignore[arg-type]
        made.append(msgspec.structs.replace(command, payload=payload, simulate_delay_s=delay))
    return made


async def publish_all(js: JetStreamContext, batch: list[Command], pause: float = 0.0) -> None:
    """Publish in batches of 100, `pause` seconds apart (to spread them over time)."""
    for start in range(0, len(batch), 100):
        await asyncio.gather(*(publish_command(js, c) for c in batch[start : start + 100]))
        await asyncio.sleep(pause)


async def notices_stored(js: JetStreamContext) -> int:
    return (await js.stream_info(NOTICES_STREAM)).state.messages


async def wait_for_notices(js: JetStreamContext, n: int, within: float) -> None:
    async def enough() -> bool | None:
        return True if await notices_stored(js) >= n else None

    await eventually(enough, within=within)


async def settled(js: JetStreamContext) -> None:
    async def idle() -> bool | None:
        info = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
        return True if info.num_pending == 0 and info.num_ack_pending == 0 else None

    await eventually(idle, within=30)


async def test_three_reactors_share_2000_commands_and_count_exactly(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    reactors = [reactor(fresh_server.url).start() for _ in range(3)]
    try:
        batch = commands(2000)
        await publish_all(fresh_js, batch)
        await wait_for_notices(fresh_js, 2000, within=180)
        await settled(fresh_js)
    finally:
        for process in reactors:
            process.stop()
    assert await category_total(fresh_js, "Continent") == (2000, [])
    statuses = await asyncio.gather(*(find_notice(fresh_js, c.command_id) for c in batch[::50]))
    assert all(s is not None and s.notice.status == "succeeded" for s in statuses)


async def test_sigkill_every_second_loses_nothing_and_applies_nothing_twice(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    env = {"REACTOR_ACK_WAIT": "2", "REACTOR_MAX_ATTEMPTS": "1000"}
    victim = reactor(fresh_server.url, env=env).start()
    batch = commands(2000, category="Country")
    # Spread over 5 s, so that the once-a-second kills land while there is work.
    publishing = asyncio.create_task(publish_all(fresh_js, batch, pause=0.25))
    kills = 0
    try:
        deadline = time.monotonic() + 240
        while await notices_stored(fresh_js) < 2000:
            assert time.monotonic() < deadline, (
                f"{await notices_stored(fresh_js)} of 2000 after {kills} kills"
            )
            await asyncio.sleep(1.0)  # the fault schedule: one SIGKILL a second
            if await notices_stored(fresh_js) < 2000:
                victim.kill()
                kills += 1
                await asyncio.to_thread(victim.start)
        await publishing
        await settled(fresh_js)
    finally:
        victim.stop()
    assert kills >= 4, f"only {kills} kills: too few to prove anything"

    # Exactly one terminal outcome per command, none re-decided.
    state = (await fresh_js.stream_info(NOTICES_STREAM)).state
    assert state.messages == state.last_seq == 2000
    notices = await asyncio.gather(*(find_notice(fresh_js, c.command_id) for c in batch))
    assert all(n is not None and n.notice.status == "succeeded" for n in notices)

    # The projection equals the one the pure handlers build without faults.
    expected = {}
    for command in batch:
        decision = create_location(command, command.payload, None)
        assert isinstance(decision, Created)
        expected[decision.location.id] = decision.location
    kv = await fresh_js.key_value(LOCATIONS_BUCKET)
    stored = await asyncio.gather(*(kv.get(key) for key in expected))
    assert {
        location_decoder.decode(e.value or b"").id: location_decoder.decode(e.value or b"")
        for e in stored
    } == expected
    buckets = await open_buckets(fresh_js, 1)
    assert len(await buckets.keys(LOCATIONS_BUCKET)) == 2000
    assert len(await buckets.keys(LOCATION_NAMES_BUCKET)) == 2000
    assert await category_total(fresh_js, "Country") == (2000, [])


async def in_flight(js: JetStreamContext, n: int) -> None:
    async def all_taken() -> bool | None:
        info = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
        return True if info.num_ack_pending == n else None

    await eventually(all_taken)


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
    assert await notices_stored(fresh_js) == 20  # finished before exiting
    await settled(fresh_js)


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
    assert any("handed back 20 unfinished commands" in line for line in first.lines)
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
        await fresh_js.delete_key_value(LOCATION_NAMES_BUCKET)  # every attempt now fails
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

        await ensure_topology(fresh_js)  # the outage is over
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
    finally:
        process.stop()
