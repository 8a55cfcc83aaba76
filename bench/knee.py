"""What scenario 1's commands wait on at a given rate: run it at the last rate the
capacity ladder keeps and at the first it does not.

    python -m bench.knee [--rates 700 800] [--seconds 8] [--concurrency 64] [--no-sync]

Each rate on a fresh stack (nats-server with `sync_interval: always` unless
`--no-sync`, a reactor with `--concurrency` commands in flight, the API), driven
open loop for `--seconds` after a warm-up. Prints, a row per rate: the rate kept,
latency, the cores each process and the whole machine used, and the p50 of
every hop (the timestamps the messages carry, as in `task bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys

from bench.loadgen import HOPS, hop_ms, open_loop
from bench.report import table
from bench.stack import CpuMeter, running_stack
from bench.stats import summarize


async def at(rate: float, seconds: float, concurrency: int, durable: bool) -> list[str]:
    """One rate's row."""
    with running_stack(durable, {"REACTOR_CONCURRENCY": str(concurrency)}) as stack:
        await open_loop(stack.url, 100, 2)  # warm-up: imports, connections, first views
        meter = CpuMeter(  # in the order of the table's columns
            {
                "api": [stack.api.pid],
                "reactor": [stack.reactor.pid],
                "nats": [stack.server.pid],
                "gen": [os.getpid()],
            }
        )
        result = await open_loop(stack.url, rate, seconds)
        busy, cores = meter.machine(), meter.cores(result.wall)
    s = summarize(result.latencies)
    hop_p50 = [statistics.median(values) for values in hop_ms(result.samples)]
    return [
        f"{rate:g}",
        f"{result.achieved_rate:.0f}",
        f"{s.p50_ms:.1f}",
        f"{s.p99_ms:.1f}",
        str(result.errors),
        *(f"{v:.2f}" for v in cores.values()),
        f"{busy:.2f}",
        *(f"{v:.2f}" for v in hop_p50),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.knee", description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[700, 800])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=64, help="the reactor's")
    parser.add_argument("--no-sync", action="store_true", help="without sync_interval: always")
    args = parser.parse_args()
    rows = [
        asyncio.run(at(rate, args.seconds, args.concurrency, not args.no_sync))
        for rate in args.rates
    ]
    sync = "no sync" if args.no_sync else "sync always"
    print(f"scenario 1, {sync}, reactor concurrency {args.concurrency}, {args.seconds:g} s a rate")
    print("cores: each process's CPU time over the run; machine: busy cores of the whole box")
    print(f"hops, p50 ms: {'; '.join(f'{i + 1} {name}' for i, name in enumerate(HOPS))}")
    header = ["rate/s", "kept/s", "p50 ms", "p99 ms", "errors"]
    header += ["api", "reactor", "nats", "gen", "machine"]
    header += [f"hop {i + 1}" for i in range(len(HOPS))]
    print(table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
