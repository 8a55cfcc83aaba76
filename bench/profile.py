"""Where each process spends its CPU under load: the API, the reactor and nats-server.

    python -m bench.profile [--rate 400] [--seconds 20] [--out bench/results]

Starts its own stack (nats-server with `sync_interval: always`, a reactor, the
API), drives scenario 1 (POST a location, wait for `succeeded` on the session
stream) at `--rate` commands/s, and samples meanwhile:

- the API and the reactor with py-spy (`--idle` off, so only time on the CPU
  counts; `--nonblocking`, so sampling does not stop the process);
- nats-server with `perf record -g` (its Go frames and the kernel's under
  them), when `perf` is installed and allowed to sample the process (root, or
  `kernel.perf_event_paranoid` <= 1); otherwise it says why and goes on.

Writes a flame graph per process (`profile-<name>.svg`, drawn by
`bench.flamegraph` from one recording) and prints the heaviest functions, by
own time and by time under them, as a share of the process's samples; for
nats-server also where its time goes by kind (fsync, sockets, Go runtime,
its own code).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.flamegraph import Stacks, parse_collapsed, parse_perf_script, svg
from bench.loadgen import open_loop
from bench.stack import running_stack
from bench.stats import summarize

HERE = Path(__file__).resolve().parent


def _sampler(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy's collapsed stacks (`raw`) of `pid` for `seconds` into `out`."""
    command = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds))]
    return _sampler([*command, "--rate", "250", "--nonblocking", "--format", "raw", "-o", str(out)])


def perf(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | str:
    """`perf record -g` of `pid` for `seconds` into `out`, or why it cannot run."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: linux-perf)"
    # -g: call chains (Go keeps frame pointers); perf script then splits samples by blank lines.
    command = ["perf", "record", "-F", "999", "-g", "-o", str(out), "-p", str(pid)]
    return _sampler([*command, "--", "sleep", str(int(seconds))])


def perf_stacks(recording: Path) -> Stacks:
    script = subprocess.run(
        ["perf", "script", "-F", "ip,sym", "-i", str(recording)],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_perf_script(script.stdout)


def _frame(line: str) -> str:
    """`name (path/to/file.py:12)` -> `name (file.py)`: one row per function, not per line."""
    name, _, where = line.partition(" (")
    if not where:
        return name
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{name} ({short})"


def by_function(stacks: Stacks) -> Stacks:
    """py-spy's frames are per line: merge them per function."""
    merged: Stacks = Counter()
    for stack, n in stacks.items():
        merged[tuple(_frame(f) for f in stack)] += n
    return merged


def top(stacks: Stacks, rows: int) -> str:
    """The heaviest functions: by own time (the leaf) and by time under them."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for frames, n in stacks.items():
        total += n
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


# nats-server's samples by kind: a sample is of the first kind in this order with a
# mark among its frames (an fsync under the stream's code counts as fsync).
KINDS = (
    ("fsync (sync_interval: always), kernel and Go", ("do_fsync", "syscall.Fsync")),
    ("socket reads and writes", ("tcp_sendmsg", "tcp_recvmsg", "sock_read_iter", "sock_write")),
    ("nats-server's code and the syscalls it makes (routing, JetStream, wake-ups)", ("server.",)),
)
OTHER_KIND = "Go runtime (scheduler, sysmon, GC, timers) and the rest"


def kinds(stacks: Stacks) -> str:
    counts: Counter[str] = Counter()
    for frames, n in stacks.items():
        kind = next(
            (name for name, marks in KINDS if any(f.startswith(marks) for f in frames)),
            OTHER_KIND,
        )
        counts[kind] += n
    total = sum(counts.values()) or 1
    return "\n".join(
        f"    {100 * counts[name] / total:5.1f} %  {name}"
        for name in [*(k for k, _ in KINDS), OTHER_KIND]
    )


def finished(sampler: subprocess.Popen[bytes], seconds: float) -> str:
    """Wait for a sampler; "" if it recorded, else why not."""
    _, err = sampler.communicate(timeout=seconds + 30)
    return "" if sampler.returncode == 0 else err.decode().strip()[-300:]


def report(name: str, stacks: Stacks, graph: Path, title: str, rows: int) -> None:
    graph.write_text(svg(stacks, title))
    print(f"\n{name} ({graph}):")
    print(top(stacks, rows))


async def profile(rate: float, seconds: float, out: Path, rows: int) -> None:
    with running_stack(durable=True) as stack:
        await open_loop(stack.url, 100, 2)  # warm-up: imports, connections, first views
        spies = {
            name: py_spy(pid, seconds, out / f"profile-{name}.txt")
            for name, pid in (("api", stack.api.pid), ("reactor", stack.reactor.pid))
        }
        perf_data = out / "profile-nats.data"
        nats_spy = perf(stack.server.pid, seconds, perf_data)
        result = await open_loop(stack.url, rate, seconds)
        # Every sampler is waited for before any failure is reported: none is left running.
        failures = {name: finished(spy, seconds) for name, spy in spies.items()}
        nats_unavailable = nats_spy if isinstance(nats_spy, str) else finished(nats_spy, seconds)
    for name, failure in failures.items():
        if failure:
            raise SystemExit(f"py-spy on the {name} failed: {failure}")
    s = summarize(result.latencies)
    print(
        f"scenario 1 at {rate:.0f}/s for {seconds:.0f} s: {len(result.latencies)} commands, "
        f"p50 {s.p50_ms:.2f} ms, p99 {s.p99_ms:.2f} ms (while sampled)"
    )
    for name in spies:
        raw = (out / f"profile-{name}.txt").read_text().splitlines()
        title = f"{name} at {rate:.0f} commands/s (py-spy, on the CPU)"
        report(name, by_function(parse_collapsed(raw)), out / f"profile-{name}.svg", title, rows)
    try:
        stacks = Stacks() if nats_unavailable else perf_stacks(perf_data)
    except subprocess.CalledProcessError as exc:
        nats_unavailable = f"perf script failed: {(exc.stderr or '').strip()[-300:]}"
    finally:
        perf_data.unlink(missing_ok=True)  # even a failed recording's
    if nats_unavailable:
        print(f"\nnats-server (not sampled: {nats_unavailable})")
        return
    title = f"nats-server at {rate:.0f} commands/s (perf, on the CPU)"
    report("nats-server", stacks, out / "profile-nats.svg", title, rows)
    print("  by kind:")
    print(kinds(stacks))


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
