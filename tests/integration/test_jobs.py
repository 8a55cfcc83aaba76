"""Async views and policies: whole reactors in-process (the test domains registered too)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from api.metrics import Metrics
from contracts.commands import derived_command_id
from contracts.connection import NatsSettings, connect, while_unavailable
from contracts.events import StoredEvent
from contracts.failing import Failure, Failures, failing
from contracts.lookups import find_command, find_notice, session_notices_after
from contracts.topology import LEASES_BUCKET, RUNNER_PROGRESS_BUCKET
from contracts.views import ViewBuckets
from reactor.jobs import Runner
from reactor.main import parse_args, run
from reactor.status import report
from tests.conftest import REGISTRY
from tests.domains.memos import MemoWritten, WriteMemo
from tests.helpers import envelope, eventually, publish_command, view_state
from tests.processes import NATS_PASSWORD, NATS_USER, NatsServer


@asynccontextmanager
async def reactor_in_process(server: NatsServer) -> AsyncIterator[asyncio.Event]:
    """A whole reactor (commands, async views, policies) on this loop; set the event to stop."""
    stop = asyncio.Event()
    settings = NatsSettings(url=server.url, user=NATS_USER, password=NATS_PASSWORD)
    task = asyncio.create_task(run(parse_args([]), settings, REGISTRY, stop))
    try:
        yield stop
    finally:
        stop.set()
        await task


async def test_a_policy_sends_a_follow_on_command_whose_notice_reaches_the_session(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    write = envelope(WriteMemo("hello", folder="work"))
    async with reactor_in_process(fresh_server):
        await publish_command(fresh_js, write)
        written = await eventually(lambda: find_notice(fresh_js, write.command_id))

        async def stamped() -> list[str] | None:
            state = await view_state(fresh_js, "memos", write.aggregate_id)
            return state["stamps"] if state and state["stamps"] else None

        assert await eventually(stamped) == ["seen"]
        session = [s.notice async for s in session_notices_after(fresh_js, write.session_id, 0)]
    assert written.notice.status == "succeeded"
    follow_on = [n for n in session if n.command_id != write.command_id]
    assert len(follow_on) == 1
    assert follow_on[0].type == "StampMemo"
    assert follow_on[0].status == "succeeded"
    assert follow_on[0].caused_by == write.command_id
    # Its id derives from the policy and the event: sending it again is the same command.
    command = await find_command(fresh_js, follow_on[0].command_id)
    assert command is not None
    assert command.caused_by == write.command_id
    assert command.session_id == write.session_id
    assert command.command_id in {
        derived_command_id("policy", "stamp_on_write", str(seq), "") for seq in range(1, 10)
    }


async def test_an_async_view_catches_up_and_says_how_far_it_has_got(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    writes = [envelope(WriteMemo(str(i), folder="later")) for i in range(20)]
    for command in writes:
        await publish_command(fresh_js, command)  # before any reactor runs
    async with reactor_in_process(fresh_server):
        last = 0
        for command in writes:
            stored = await eventually(partial(find_notice, fresh_js, command.command_id))
            last = max(last, stored.notice.position or 0)
        buckets = ViewBuckets(fresh_js, 1)

        async def caught_up() -> bool | None:
            return True if await buckets.progress("memo_folders") >= last else None

        await eventually(caught_up)
    assert await view_state(fresh_js, "memo_folders", "later") == {"folder": "later", "memos": 20}


async def test_two_reactors_run_each_job_once_and_hand_it_over_on_stop(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    leases = await fresh_js.key_value(LEASES_BUCKET)
    async with reactor_in_process(fresh_server) as first_stop:
        holder = await eventually(lambda: _holder(leases, "view.memo_folders"))
        async with reactor_in_process(fresh_server):
            await asyncio.sleep(0.5)
            assert await _holder(leases, "view.memo_folders") == holder  # no second runner
            first_stop.set()  # the first stops cleanly: it gives its jobs up at once

            async def moved() -> str | None:
                now = await _holder(leases, "view.memo_folders")
                return now if now not in (None, holder) else None

            await eventually(moved, within=5)
            command = envelope(WriteMemo("after", folder="handover"))
            await publish_command(fresh_js, command)

            async def counted() -> bool | None:
                state = await view_state(fresh_js, "memo_folders", "handover")
                return True if state == {"folder": "handover", "memos": 1} else None

            await eventually(counted)


async def _holder(leases: KeyValue, job: str) -> str | None:
    """Who holds a job's lease (None: nobody)."""
    try:
        entry = await leases.get(job)
    except (KeyNotFoundError, KeyDeletedError):
        return None
    return (entry.value or b"").decode() or None


async def test_an_event_appended_just_after_a_restart_of_the_server_is_not_skipped(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    """The server's restart loses the readers' consumers (in memory) and their
    open pulls; an idle reader must not take "nothing arrived" for "nothing
    there" and move its position over an event it never received."""
    settings = NatsSettings(url=fresh_server.url, user=NATS_USER, password=NATS_PASSWORD)
    nc = await connect(settings, "test")  # reconnects, as the reactor's does
    js = nc.jetstream()
    try:
        async with reactor_in_process(fresh_server):
            first = envelope(WriteMemo("before", folder="restart"))
            await publish_command(js, first)

            async def counted(n: int) -> bool | None:
                state = await view_state(js, "memo_folders", "restart")
                return True if state == {"folder": "restart", "memos": n} else None

            await eventually(partial(counted, 1))
            await asyncio.to_thread(fresh_server.restart)
            after = envelope(WriteMemo("after", folder="restart"))
            await while_unavailable(
                partial(publish_command, js, after), within=10, what="the command"
            )
            assert (await eventually(partial(find_notice, js, after.command_id))).notice.status == (
                "succeeded"
            )
            # The async view and the policy each read it, once their readers are made again.
            await eventually(partial(counted, 2), within=30)

            async def stamped() -> bool | None:
                state = await view_state(js, "memos", after.aggregate_id)
                return True if state and state["stamps"] == ["seen"] else None

            await eventually(stamped, within=30)
    finally:
        await nc.close()


class Flaky:
    """A job that cannot get past the memos' events while `broken` (a bug in a fold)."""

    linger = 0.0
    batch = 100

    def __init__(self) -> None:
        self.name = "view.flaky"
        self.subjects = REGISTRY.event_filter((MemoWritten,))
        self.broken = True
        self.position = 0

    async def start(self) -> int:
        return self.position

    async def handle(self, events: list[StoredEvent]) -> None:
        if self.broken:
            raise ZeroDivisionError("division by zero\nand a second line")

    async def save(self, position: int) -> None:
        self.position = position

    async def finish(self) -> None:
        return None

    def restart(self) -> asyncio.Event | None:
        return None


async def test_a_job_stuck_on_an_event_says_so_in_status_and_metrics_until_it_moves(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    """It said so only in its reactor's log: `task status` showed a lag with no reason,
    and /metrics had nothing to alert on."""
    writes = [envelope(WriteMemo(str(i), folder="stuck")) for i in range(3)]
    async with reactor_in_process(fresh_server):
        for command in writes:
            await publish_command(fresh_js, command)
        for command in writes:
            await eventually(partial(find_notice, fresh_js, command.command_id))
    leases = await fresh_js.key_value(LEASES_BUCKET)
    progress = await fresh_js.key_value(RUNNER_PROGRESS_BUCKET)
    job = Flaky()
    runner = Runner(
        job,
        fresh_js,
        REGISTRY,
        leases,
        holder="reactor-a",
        failures=Failures(progress, "reactor-a"),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:

        async def tried_twice() -> list[Failure] | None:
            found = await failing(fresh_js)
            return found if found and found[0].attempts >= 2 else None

        [stuck] = await eventually(tried_twice, within=10)
        assert stuck.job == "view.flaky"
        assert stuck.error == "ZeroDivisionError: division by zero"
        assert stuck.position == 0  # it got past nothing
        assert stuck.reactor == "reactor-a"
        assert stuck.since < stuck.at
        lines = await report(fresh_js, REGISTRY)
        assert any(
            line.startswith("  FAILING view.flaky: stuck after event 0 since")
            and "attempts" in line
            and line.endswith("ZeroDivisionError: division by zero")
            for line in lines
        ), lines
        metrics = Metrics(REGISTRY)
        await metrics.refresh(fresh_js, ViewBuckets(fresh_js, 1))
        assert 'notify_job_failing{job="view.flaky"} 1.0' in metrics.render().decode()

        job.broken = False  # the fix deployed: the next attempt gets past

        async def cleared() -> bool | None:
            return True if not await failing(fresh_js) else None

        await eventually(cleared, within=15)
        assert job.position > 0
        await metrics.refresh(fresh_js, ViewBuckets(fresh_js, 1))
        assert "notify_job_failing{" not in metrics.render().decode()
        assert not any("FAILING" in line for line in await report(fresh_js, REGISTRY))
    finally:
        stop.set()
        await task
