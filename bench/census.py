"""Every message through nats-server while scenario 1 runs, by kind of subject, a command.

    python -m bench.census [--rate 300] [--seconds 4]

Starts its own stack, subscribes to `>` as the operator (every publish,
delivery, reply and ack passes it), drives scenario 1 at `--rate` and prints
the messages of each kind per command and per second. What runs per command
shows at about 1.0 (or 2.0: published, then delivered) at every rate; what runs
on a timer (view checkpoints, the lag gauge's stream info) shows per second.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections import Counter

from nats.aio.msg import Msg

from bench.loadgen import open_loop
from bench.stack import running_stack
from tests.conftest import connect_test_client

_PER_ID = ("ev", "notice", "live", "cmd", "$KV")  # <prefix>.<name>.<id...>


def kind(subject: str) -> str:
    """A subject without its ids: `$KV.view_locations.<key>` -> `$KV.view_locations.*`."""
    if subject.startswith("_INBOX."):
        return "_INBOX.* (replies, pulled messages)"
    if subject.startswith("$JS.ACK."):
        return "$JS.ACK.* (consumer acks)"
    parts = subject.split(".")
    if parts[0] in _PER_ID:
        if parts[0] == "notice":  # notice.<session>.<command>
            return "notice.*.*"
        return ".".join(parts[:2]) + ".*"
    return re.sub(r"\.[A-Za-z0-9]{8,}$", ".*", subject)  # advisories name a consumer


async def census(rate: float, seconds: float, rows: int) -> None:
    with running_stack(durable=True) as stack:
        await open_loop(stack.url, 100, 2)  # warm-up: connections, consumers, first views
        nc = await connect_test_client(stack.server.url)
        counts: Counter[str] = Counter()

        async def count(msg: Msg) -> None:
            counts[kind(msg.subject)] += 1

        await nc.subscribe(">", cb=count, pending_msgs_limit=-1)
        await nc.flush()
        result = await open_loop(stack.url, rate, seconds)
        await nc.flush()
        await nc.close()
    n = len(result.latencies)
    print(f"scenario 1 at {rate:.0f}/s for {seconds:.0f} s: {n} commands")
    print(f"{'a command':>10}  {'a second':>9}  subject")
    for name, c in counts.most_common(rows):
        print(f"{c / n:10.2f}  {c / seconds:9.1f}  {name}")
    print(f"{sum(counts.values()) / n:10.2f}  {sum(counts.values()) / seconds:9.1f}  all")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.census", description=__doc__)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(census(args.rate, args.seconds, args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
