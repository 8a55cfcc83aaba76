"""`python -m reactor.status` (`task status`): is the reactor keeping up?

Prints the durable consumer's lag and redeliveries, the streams' sizes and the
dead letters. Healthy: `pending` near 0 (it only grows while reactors are
down or slower than the arrival rate), `redelivered` small and not growing
(transient failures), `dead letters` 0, and `waiting pulls` at least one per
running reactor (an idle reactor keeps a fetch open).
"""

from __future__ import annotations

import sys

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.topology import (
    COMMANDS_STREAM,
    DEADLETTERS_STREAM,
    NOTICES_STREAM,
    REACTOR_CONSUMER,
)
from reactor.cli import nats_client, run_tool


async def report(js: JetStreamContext) -> list[str]:
    lines = []
    for name in (COMMANDS_STREAM, NOTICES_STREAM, DEADLETTERS_STREAM):
        try:
            state = (await js.stream_info(name)).state
            lines.append(f"{name:<12} messages={state.messages:<8} last_seq={state.last_seq}")
        except NotFoundError:
            lines.append(f"{name:<12} missing (start the reactor or the API to create it)")
    try:
        info = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
    except NotFoundError:
        lines.append(f"consumer {REACTOR_CONSUMER!r} missing: no reactor has started yet")
        return lines
    lines += [
        f"consumer {REACTOR_CONSUMER!r}",
        f"  pending      {info.num_pending}  (accepted commands not yet delivered: the lag)",
        f"  in flight    {info.num_ack_pending}  (delivered, not yet acknowledged)",
        f"  redelivered  {info.num_redelivered}  (in flight after a failed or lost attempt)",
        f"  waiting pulls {info.num_waiting}  (open fetches: about one per idle reactor)",
        f"  acked up to  {info.ack_floor.stream_seq if info.ack_floor else 0}"
        f" of {info.delivered.stream_seq if info.delivered else 0} delivered",
    ]
    return lines


async def run() -> int:
    async with nats_client("status") as nc:
        print("\n".join(await report(nc.jetstream())))
    return 0


def main() -> int:
    return run_tool("status", run())


if __name__ == "__main__":
    sys.exit(main())
