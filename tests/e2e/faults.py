"""What the fault tests share: publishing batches, waiting for outcomes, a kill schedule."""

from __future__ import annotations

import asyncio
import time

from nats.js import JetStreamContext

from contracts.commands import Command
from contracts.topology import COMMANDS_STREAM, NOTICES_STREAM, REACTOR_CONSUMER
from tests.helpers import eventually, publish_command
from tests.processes import Process


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
    """Every command delivered and acknowledged."""

    async def idle() -> bool | None:
        info = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
        return True if info.num_pending == 0 and info.num_ack_pending == 0 else None

    await eventually(idle, within=30)


async def kill_every_second(
    victim: Process, js: JetStreamContext, until_notices: int, within: float = 240
) -> int:
    """SIGKILL the process once a second (and start it again) until the notices are stored."""
    kills = 0
    deadline = time.monotonic() + within
    while await notices_stored(js) < until_notices:
        assert time.monotonic() < deadline, (
            f"{await notices_stored(js)} of {until_notices} notices after {kills} kills"
        )
        await asyncio.sleep(1.0)  # the fault schedule: one SIGKILL a second
        if await notices_stored(js) < until_notices:
            victim.kill()
            kills += 1
            await asyncio.to_thread(victim.start)
    return kills
