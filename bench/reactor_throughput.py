"""Reactor throughput: commands/s with N reactor processes.

    python -m bench.reactor_throughput [--reactors 1 2] [-n 2000]

For each N: a fresh nats-server (temp store, the project's nats.conf, so
`sync_interval: always`), N reactor processes, then n CreateLocation commands
published straight to JetStream beforehand (a backlog), and the time from
starting the reactors to the last notice stored. Categories rotate over the
five, as a real mix would.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from contracts.topology import NOTICES_STREAM, ensure_topology
from domains import registry
from domains.locations.commands import CATEGORIES, Category
from tests.conftest import connect_test_client
from tests.helpers import make_command, publish_command
from tests.processes import NatsServer, reactor


async def one_run(reactors: int, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "store").start()
        try:
            nc = await connect_test_client(server.url)
            js = nc.jetstream()
            await ensure_topology(js, registry().views)
            categories: list[Category] = list(CATEGORIES)  # type: ignore[arg-type]
            for start in range(0, n, 200):
                batch = [
                    make_command(category=categories[i % len(categories)])
                    for i in range(start, min(n, start + 200))
                ]
                await asyncio.gather(*(publish_command(js, c) for c in batch))
            started = time.perf_counter()
            processes = [reactor(server.url).start() for _ in range(reactors)]
            try:
                while (await js.stream_info(NOTICES_STREAM)).state.messages < n:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # a poll of the server's count: no event to wait on
                elapsed = time.perf_counter() - started
            finally:
                for p in processes:
                    p.stop()
            await nc.close()
            return n / elapsed
        finally:
            server.stop()


async def main(counts: list[int], n: int) -> None:
    print(f"{n} commands queued, then N reactors started; rate = n / time to the last notice")
    for count in counts:
        rate = await one_run(count, n)
        print(f"reactors={count}  {rate:8.0f} commands/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m bench.reactor_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reactors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.reactors, args.n))
