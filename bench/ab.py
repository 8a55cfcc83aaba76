"""A/B: this checkout against another one, interleaved, on the same machine.

    git worktree add /tmp/before <commit>
    python -m bench.ab --other /tmp/before [--rounds 4] [--seconds 20] [--r3]

Each round runs, in each checkout in turn (its own nats-server, reactor and
API, started from that checkout), scenario 1 (100 commands/s, the session
stream) and the CRUD baseline, and prints their p50 and p99; with `--r3`
also scenario 1 on a cluster of three nats-servers, every stream on all
three (its p50, and its ratio to scenario 1 on one server). Interleaving the
two and taking medians over rounds keeps the machine's drift (fsync times
vary run to run) out of the comparison. The other checkout needs this
project's bench harness (`bench.stack`, `bench.loadgen`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


# Run in each checkout's own directory, so that its own bench harness and code are used.
SIDE = """
import asyncio, json, sys
sys.path.insert(0, ".")
from bench.loadgen import crud_open_loop, open_loop
from bench.stack import crud_baseline, running_cluster, running_stack
from bench.stats import summarize

async def measured(drive, url, seconds):
    await drive(url, 50, 1)  # warm-up
    return summarize((await drive(url, 100, seconds)).latencies)

async def r3(seconds):
    with running_cluster() as (stack, _):
        return (await measured(open_loop, stack.url, seconds)).p50_ms

async def side(seconds, with_r3):
    with running_stack(durable=True) as stack:
        s1 = await measured(open_loop, stack.url, seconds)
        with crud_baseline(stack.server) as crud:
            # (url, pid) since the CRUD ladder; the URL alone before it
            crud_url = crud[0] if isinstance(crud, tuple) else crud
            crud = await measured(crud_open_loop, crud_url, seconds)
    got = {"s1_p50": s1.p50_ms, "s1_p99": s1.p99_ms, "crud_p50": crud.p50_ms}
    if with_r3:
        got["r3_p50"] = await r3(seconds)
    return got

print(json.dumps(asyncio.run(side(float(sys.argv[1]), sys.argv[2] == "r3"))))
"""


def run_side(checkout: Path, seconds: float, r3: bool) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", SIDE, str(seconds), "r3" if r3 else "r1"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("--other", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--r3", action="store_true", help="scenario 1 on an R3 cluster too")
    args = parser.parse_args()
    sides = {"other": args.other.resolve(), "this": HERE}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for round_ in range(1, args.rounds + 1):
        for name, checkout in sides.items():
            got = run_side(checkout, args.seconds, args.r3)
            results[name].append(got)
            print(f"round {round_} {name:<5} " + "  ".join(f"{k} {v:.2f}" for k, v in got.items()))
    print()
    for name, rows in results.items():
        s1 = statistics.median(r["s1_p50"] for r in rows)
        ratio = statistics.median(r["s1_p50"] / r["crud_p50"] for r in rows)
        print(f"{name:<5} median of {args.rounds}: scenario 1 p50 {s1:.2f} ms, x{ratio:.2f} CRUD")
        if args.r3:
            r3 = statistics.median(r["r3_p50"] for r in rows)
            r3_ratio = statistics.median(r["r3_p50"] / r["s1_p50"] for r in rows)
            print(f"{name:<5} median of {args.rounds}: R3 p50 {r3:.2f} ms, x{r3_ratio:.2f} R1")
    this = statistics.median(r["s1_p50"] for r in results["this"])
    other = statistics.median(r["s1_p50"] for r in results["other"])
    print(f"this / other at p50: {this / other:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
