"""Where each process spends its CPU under load: py-spy on the API and the reactor.

    python -m bench.profile [--rate 400] [--seconds 20] [--out bench/results]

Starts its own stack (nats-server with `sync_interval: always`, a reactor, the
API), drives scenario 1 (POST a location, wait for `succeeded` on the session
stream) at `--rate` commands/s, and samples the API and the reactor with py-spy
meanwhile (`--idle` off, so only time on the CPU counts; `--nonblocking`, so
sampling does not stop the process). Writes for each process a flame graph
(`profile-<name>.svg`) and prints the functions with the most samples on the
CPU, by own time and by time under them, as a share of the process's samples.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.loadgen import open_loop
from bench.stack import running_stack
from bench.stats import summarize

HERE = Path(__file__).resolve().parent


def py_spy(pid: int, seconds: float, out: Path, fmt: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "250",
            "--nonblocking",
            "--format",
            fmt,
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _frame(line: str) -> str:
    """`name (path/to/file.py:12)` -> `name (file.py)`: one row per function, not per line."""
    name, _, where = line.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{name} ({short})"


def top(collapsed: Path, rows: int) -> str:
    """The heaviest functions of a py-spy `raw` (collapsed stacks) file."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            under[frame] += n
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples on the CPU"]
    for title, counter in (("own time", own), ("time under it", under)):
        lines.append(f"  by {title}:")
        for frame, n in counter.most_common(rows):
            lines.append(f"    {100 * n / total:5.1f} %  {frame}")
    return "\n".join(lines)


async def profile(rate: float, seconds: float, out: Path, rows: int) -> None:
    with running_stack(durable=True) as stack:
        await open_loop(stack.url, 100, 2)  # warm-up: imports, connections, first views
        targets = {"api": stack.api.pid, "reactor": stack.reactor.pid}
        spies = {
            name: (
                py_spy(pid, seconds, out / f"profile-{name}.txt", "raw"),
                py_spy(pid, seconds, out / f"profile-{name}.svg", "flamegraph"),
            )
            for name, pid in targets.items()
        }
        result = await open_loop(stack.url, rate, seconds)
        for name, pair in spies.items():
            for spy in pair:
                _, err = spy.communicate(timeout=seconds + 30)
                if spy.returncode != 0:
                    raise SystemExit(f"py-spy on the {name} failed: {err.decode().strip()}")
    s = summarize(result.latencies)
    print(
        f"scenario 1 at {rate:.0f}/s for {seconds:.0f} s: {len(result.latencies)} commands, "
        f"p50 {s.p50_ms:.2f} ms, p99 {s.p99_ms:.2f} ms (with py-spy sampling)"
    )
    for name in targets:
        print(f"\n{name} ({out / f'profile-{name}.svg'}):")
        print(top(out / f"profile-{name}.txt", rows))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--rate", type=float, default=400)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(profile(args.rate, args.seconds, args.out, args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
