"""Client-side latency from POST to `succeeded`, one command at a time.

    python -m bench.latency [-n 500]                  on a stack of its own (temp store)
    python -m bench.latency --url http://127.0.0.1:8000   against a running one

By default it starts its own nats-server (temporary store), reactor and API,
so it never writes its hundreds of locations into your stack; `--url`
measures a running stack instead (and does write them there). Each round:
POST /api/locations (a fresh name), then GET the command's event stream and
read until `succeeded`, as the page does. Reports p50/p90/p99/max of the
whole round and of the POST alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

from tests.processes import own_stack


def percentile(sorted_ms: list[float], p: float) -> float:
    index = min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms)) - 1))
    return sorted_ms[index]


def summary(label: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    cells = " ".join(
        f"{name}={percentile(ms, p):7.2f}"
        for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
    )
    return f"{label:<22} n={len(ms)} {cells} mean={statistics.fmean(ms):7.2f} ms"


async def one_round(client: httpx.AsyncClient, run: str, i: int) -> tuple[float, float]:
    started = time.perf_counter()
    response = await client.post(
        "/api/locations",
        json={"name": f"bench {run} {i}", "category": "City", "description": "latency"},
    )
    accepted = time.perf_counter()
    response.raise_for_status()
    async with aconnect_sse(client, "GET", response.json()["events_url"]) as source:
        async for event in source.aiter_sse():
            if event.event in ("succeeded", "failed", "timeout"):
                if event.event != "succeeded":
                    raise RuntimeError(f"round {i}: {event.event} {event.data}")
                break
    return time.perf_counter() - started, accepted - started


async def main(url: str, rounds: int, warmup: int) -> None:
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=30)) as client:
        for i in range(warmup):
            await one_round(client, run, -1 - i)
        results = [await one_round(client, run, i) for i in range(rounds)]
    print(f"{rounds} sequential commands against {url} (after {warmup} warm-up rounds)")
    print(summary("POST -> succeeded", [total for total, _ in results]))
    print(summary("POST -> 202", [post for _, post in results]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="a running stack to measure (default: one of its own)")
    parser.add_argument("-n", "--rounds", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    if args.url is None:
        with tempfile.TemporaryDirectory() as folder, own_stack(Path(folder) / "store") as stack:
            asyncio.run(main(stack.url, args.rounds, args.warmup))
        sys.exit(0)
    try:
        asyncio.run(main(args.url, args.rounds, args.warmup))
    except httpx.ConnectError:
        print(f"bench: cannot reach {args.url}; start the stack with 'task up'", file=sys.stderr)
        sys.exit(1)
