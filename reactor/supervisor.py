"""`python -m reactor.supervisor` (`task up`): the local stack, started and stopped in order.

    nats-server -> SMTP sink -> reactor -> API     (each once the one before is ready)

- Every port is checked first (NATS client and monitoring, the SMTP sink, the
  API): one taken, and it says which, starts nothing and exits 1. (So a
  second `task up` does not half-start, nor join the first one's NATS.)
- Each part's output is printed with its name in front; the URL is printed
  once the API listens, with the port it really has (`API_PORT=0`).
- Any part that exits stops the others (in reverse order) and the supervisor
  exits 1 with one line saying which part and why.
- Ctrl-C or SIGTERM: the API and the reactor stop first, with NATS still
  there for their grace period (in-flight commands finish or are handed
  back), then the sink, nats-server last; exit 0.

`--cluster` (`task cluster:up`): three nats-servers routed into one cluster
(a store each under .data/cluster/, every stream and bucket on all three:
NATS_REPLICAS=3), the sink, two reactors and two APIs, every process
connected to all three servers; the APIs share one port (SO_REUSEPORT), so
there is one URL. A nats-server that exits is started again after 2 s (the
cluster goes on without it meanwhile); any other part exiting stops all.

The parts run in process groups of their own: a terminal's Ctrl-C reaches
this supervisor only, which then stops them in that order. (Why not honcho:
it starts everything at once and stops everything at once; this order is
the point.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from contracts.connection import DEFAULT_URL, addresses

ROOT: Final = Path(__file__).resolve().parent.parent
# The server's configuration, as the contracts package carries it (a link to nats.conf).
NATS_CONF: Final = ROOT / "contracts" / "nats.conf"
READY_WITHIN: Final = 30.0
STOP_WITHIN: Final = 20.0


@dataclass
class Part:
    name: str
    argv: list[str]
    ready: re.Pattern[str]
    env: dict[str, str] = field(default_factory=dict)  # beside the supervisor's
    restart: bool = False  # started again when it exits (a cluster's nats-server)
    # Monitoring URLs that must answer 200 too before it counts as ready (a cluster's
    # /healthz: JetStream has a leader, so the parts after it need not wait for one).
    healthz: list[str] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    last_lines: list[str] = field(default_factory=list)
    ready_match: re.Match[str] | None = None


def ports(env: dict[str, str]) -> list[tuple[str, str, int]]:
    """(part, host, port) of everything the stack listens on (pure)."""
    nats_port, _, monitor = cluster_bases(env)
    return [
        ("nats-server", "127.0.0.1", nats_port),
        ("nats-server monitoring", "127.0.0.1", monitor),
        ("SMTP sink", env.get("SMTP_HOST", "127.0.0.1"), int(env.get("SMTP_PORT", "8025"))),
        ("API", env.get("API_HOST", "127.0.0.1"), int(env.get("API_PORT", "8000"))),
    ]


def taken(host: str, port: int) -> bool:
    if port == 0:
        return False  # any free port
    with socket.socket() as probe:
        # As the servers bind (SO_REUSEADDR): only a listener makes the port taken,
        # not the closed connections of a stack just stopped (TIME_WAIT).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def parts(env: dict[str, str], dev: bool) -> list[Part]:
    python = sys.executable
    nats = str(Path(python).parent / "nats-server")
    nats_port, _, monitor = cluster_bases(env)
    return [
        Part(
            "nats",
            [nats, "-c", str(NATS_CONF), "-p", str(nats_port), "-m", str(monitor)],
            re.compile(r"Server is ready"),
        ),
        Part(
            "mail",
            [
                python,
                "-m",
                "reactor.mailsink",
                "serve",
                "--host",
                env.get("SMTP_HOST", "127.0.0.1"),
                "--port",
                env.get("SMTP_PORT", "8025"),
                "--dir",
                env.get("MAIL_SINK_DIR", ".data/mail"),
            ],
            re.compile(r"SMTP sink listening"),
        ),
        Part(
            "reactor",
            [python, "-m", "reactor", *(["--dev"] if dev else [])],
            re.compile(r"reactor ready"),
        ),
        Part("api", [python, "-m", "api"], API_READY),
    ]


API_READY: Final = re.compile(r"API ready: open (http://\S+)")
CLUSTER_SIZE: Final = 3


def cluster_bases(env: dict[str, str]) -> tuple[int, int, int]:
    """The client, route and monitoring ports (of the first server of `--cluster`,
    each other taking the next): NATS_URL's first port (4222), NATS_ROUTE_PORT
    (6222) and NATS_MONITOR_PORT (8222)."""
    servers = addresses(env.get("NATS_URL", DEFAULT_URL))
    return (
        (servers[0].port if servers else None) or 4222,
        int(env.get("NATS_ROUTE_PORT", "6222")),
        int(env.get("NATS_MONITOR_PORT", "8222")),
    )


def cluster_ports(env: dict[str, str]) -> list[tuple[str, str, int]]:
    """(part, host, port) of everything `--cluster` listens on (pure)."""
    client, route, monitor = cluster_bases(env)
    found = []
    for i in range(CLUSTER_SIZE):
        found += [
            (f"nats-{i + 1}", "127.0.0.1", client + i),
            (f"nats-{i + 1} routes", "127.0.0.1", route + i),
            (f"nats-{i + 1} monitoring", "127.0.0.1", monitor + i),
        ]
    return [*found, *ports(env)[2:]]  # the SMTP sink and the API as without --cluster


def cluster_env(env: dict[str, str]) -> dict[str, str]:
    """What every part of `--cluster` is given: all three servers, R3, a shared API port."""
    client, _, _ = cluster_bases(env)
    servers = ",".join(f"nats://127.0.0.1:{client + i}" for i in range(CLUSTER_SIZE))
    return {
        **env,
        "NATS_URL": servers,
        "NATS_REPLICAS": env.get("NATS_REPLICAS", str(CLUSTER_SIZE)),
        "API_REUSE_PORT": "1",
    }


def cluster_parts(env: dict[str, str], dev: bool) -> list[Part]:
    """Three nats-servers (routed, a store each), the sink, two reactors, two APIs."""
    nats, mail, reactor, api = parts(env, dev)
    client, route, monitor = cluster_bases(env)
    routes = ",".join(f"nats://127.0.0.1:{route + i}" for i in range(CLUSTER_SIZE))
    store = Path(env["NATS_STORE_DIR"]) / "cluster"
    servers = []
    for i in range(CLUSTER_SIZE):
        name = f"n{i + 1}"
        (store / name).mkdir(parents=True, exist_ok=True)
        argv = [nats.argv[0], "-c", str(NATS_CONF), "-p", str(client + i), "-m", str(monitor + i)]
        argv += ["--server_name", name, "--cluster_name", "notify"]
        argv += ["--cluster", f"nats://127.0.0.1:{route + i}", "--routes", routes]
        servers.append(
            Part(
                f"nats-{i + 1}",
                argv,
                nats.ready,
                env={"NATS_STORE_DIR": str(store / name)},
                restart=True,
            )
        )
    servers[-1].healthz = [f"http://127.0.0.1:{monitor + i}/healthz" for i in range(CLUSTER_SIZE)]
    reactors = [
        Part(f"reactor-{i}", reactor.argv, reactor.ready, env={"REACTOR_ID": f"reactor-{i}"})
        for i in (1, 2)
    ]
    apis = [Part(f"api-{i}", api.argv, api.ready) for i in (1, 2)]
    return [*servers, mail, *reactors, *apis]


async def healthy(urls: list[str], within: float) -> bool:
    """Whether every URL answers 200 within `within` seconds (asked every 0.2 s)."""

    def answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:  # refused, or an error status
            return False

    deadline = asyncio.get_running_loop().time() + within
    while not all([await asyncio.to_thread(answers, url) for url in urls]):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


class Supervisor:
    def __init__(self, parts: list[Part], env: dict[str, str]) -> None:
        self.parts = parts
        self.env = env
        self.failed = asyncio.Event()
        self.failure = ""
        self.stopping = False

    async def start(self, part: Part) -> None:
        part.process = await asyncio.create_subprocess_exec(
            *part.argv,
            cwd=ROOT,
            env={**self.env, **part.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C is for the supervisor; it stops the parts in order
        )
        ready = asyncio.Event()
        asyncio.get_running_loop().create_task(self._pump(part, ready))
        waiting = asyncio.create_task(ready.wait())
        failing = asyncio.create_task(self.failed.wait())
        done, pending = await asyncio.wait(
            {waiting, failing}, timeout=READY_WITHIN, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        if waiting not in done and not self.failed.is_set():
            self.fail(f"{part.name} was not ready within {READY_WITHIN:g}s")
        elif part.healthz and not await healthy(part.healthz, READY_WITHIN):
            urls = ", ".join(part.healthz)
            self.fail(f"{part.name}: {urls} not healthy within {READY_WITHIN:g}s")

    async def _pump(self, part: Part, ready: asyncio.Event) -> None:
        assert part.process is not None
        assert part.process.stdout is not None
        async for raw in part.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            print(f"[{part.name}] {line}", flush=True)
            part.last_lines = [*part.last_lines[-4:], line]
            if not ready.is_set() and (found := part.ready.search(line)):
                part.ready_match = found
                ready.set()
        code = await part.process.wait()
        if self.stopping:
            return
        why = next((line for line in reversed(part.last_lines) if line.strip()), "no output")
        if part.restart:
            # A cluster goes on without one server: start it again, as its service manager would.
            print(f"up: {part.name} exited (code {code}); starting it again in 2s", flush=True)
            await asyncio.sleep(2.0)
            if not self.stopping:
                await self.start(part)
            return
        self.fail(f"{part.name} exited (code {code}): {why}")

    def fail(self, why: str) -> None:
        if not self.failed.is_set():
            self.failure = why
            self.failed.set()

    async def stop(self) -> None:
        """Everything but nats-server first (together), nats-server last."""
        self.stopping = True
        running = [p for p in self.parts if p.process is not None and p.process.returncode is None]
        clients = [p for p in running if not p.name.startswith("nats")]
        await asyncio.gather(*(self._stop(p) for p in reversed(clients)))
        await asyncio.gather(*(self._stop(p) for p in running if p.name.startswith("nats")))

    async def _stop(self, part: Part) -> None:
        assert part.process is not None
        with contextlib.suppress(ProcessLookupError):
            part.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(part.process.wait(), STOP_WITHIN)
        except TimeoutError:
            print(f"up: {part.name} did not stop within {STOP_WITHIN:g}s; killed", flush=True)
            with contextlib.suppress(ProcessLookupError):
                part.process.kill()
            await part.process.wait()


async def run(env: dict[str, str], dev: bool, cluster: bool = False) -> int:
    try:
        listening = cluster_ports(env) if cluster else ports(env)
    except ValueError as exc:  # API_PORT=abc, NATS_URL with a port that is not one
        print(f"up: a port in the settings is not a number ({exc})", file=sys.stderr)
        return 1
    busy = [(name, host, port) for name, host, port in listening if taken(host, port)]
    if busy:
        name, host, port = busy[0]
        print(
            f"up: port {port} on {host} ({name}) is in use: stop what uses it "
            "(another `task up`?) or choose other ports (README: Configuration)",
            file=sys.stderr,
        )
        return 1
    if cluster:
        env = cluster_env(env)
    supervisor = Supervisor(cluster_parts(env, dev) if cluster else parts(env, dev), env)
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    try:
        for part in supervisor.parts:
            starting = asyncio.create_task(supervisor.start(part))
            stop = asyncio.create_task(interrupted.wait())
            await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
            stop.cancel()
            if interrupted.is_set() or supervisor.failed.is_set():
                break
        else:
            api = supervisor.parts[-1]
            assert api.ready_match is not None
            print(
                f"up: ready: open {api.ready_match.group(1)}  (Ctrl-C stops everything)", flush=True
            )
        ended = asyncio.create_task(interrupted.wait())
        failed = asyncio.create_task(supervisor.failed.wait())
        await asyncio.wait({ended, failed}, return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        failed.cancel()
    finally:
        await supervisor.stop()
    if supervisor.failed.is_set() and not interrupted.is_set():
        print(f"up: {supervisor.failure}; stopped the rest", file=sys.stderr)
        return 1
    print("up: stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reactor.supervisor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-dev", action="store_true", help="run the reactor without --dev")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="three nats-servers in a cluster (R3), two reactors, two APIs on one port",
    )
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if not args.no_dev:
        env.setdefault("API_DEV", "1")  # the page's developer panel, with the reactor's --dev
    env.setdefault("NATS_STORE_DIR", str(ROOT / ".data"))
    Path(env["NATS_STORE_DIR"]).mkdir(parents=True, exist_ok=True)
    return asyncio.run(run(env, dev=not args.no_dev, cluster=args.cluster))


if __name__ == "__main__":
    sys.exit(main())
