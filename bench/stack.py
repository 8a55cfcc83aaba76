"""The system under test, as separate processes: nats-server, a reactor, the API, and
the synchronous CRUD baseline. Each on free ports with a temp store."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.processes import (
    NATS_CONF,
    NatsCluster,
    NatsServer,
    Process,
    Stack,
    api,
    nats_env,
    own_stack,
    reactor,
)

API_ENV = {
    "API_ACCESS_LOG": "0",  # a log line per request costs the API CPU the load generator needs
    "MAX_SSE_STREAMS": "30000",
    # The load generator is one address and one cookie standing in for thousands of
    # browsers: the per-client and per-session caps would refuse the crowd.
    "MAX_SSE_STREAMS_PER_SESSION": "30000",
    "MAX_SSE_STREAMS_PER_CLIENT": "30000",
    # The crowd queues 10,000 commands on purpose, and the ladder measures how far
    # the service goes, not where admission would stop it.
    "COMMAND_BACKLOG_LIMIT": "0",
}


def nats_config(durable: bool, directory: Path) -> Path:
    """The project's nats.conf, or a copy without `sync_interval: always`."""
    if durable:
        return NATS_CONF
    text = "\n".join(
        line for line in NATS_CONF.read_text().splitlines() if "sync_interval" not in line
    )
    path = directory / "nats-no-sync.conf"
    path.write_text(text)
    return path


@contextmanager
def own_server(prefix: str = "bench-") -> Iterator[str]:
    """A nats-server with the project's nats.conf on a temp store, stopped after; its URL."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = NatsServer(Path(tmp) / "store").start()
        try:
            yield server.url
        finally:
            server.stop()


@contextmanager
def running_stack(
    durable: bool = True, reactor_env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """The stack on a temp store; `reactor_env` adds to the reactor's environment (the
    process helpers pass none of the caller's `REACTOR_*` variables on)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        config = nats_config(durable, Path(tmp))
        with own_stack(
            Path(tmp) / "store",
            config=config,
            api_env=API_ENV,
            reactor_env={"REACTOR_ACCESS_LOG": "0", **(reactor_env or {})},
        ) as stack:
            yield stack


@contextmanager
def running_cluster() -> Iterator[tuple[Stack, NatsCluster]]:
    """A reactor and the API as in `running_stack`, on three nats-servers in a
    cluster with every stream and bucket on all three (NATS_REPLICAS=3)."""
    replicas = {"NATS_REPLICAS": "3"}
    with tempfile.TemporaryDirectory(prefix="bench-r3-") as tmp, ExitStack() as started:
        servers = NatsCluster(Path(tmp)).start()
        started.callback(servers.stop)
        the_reactor = reactor(servers.url, env={**replicas, "REACTOR_ACCESS_LOG": "0"}).start()
        started.callback(the_reactor.stop)
        the_api = api(servers.url, env={**API_ENV, **replicas}).start()
        started.callback(the_api.stop)
        yield Stack(servers.servers[0], the_api, the_reactor), servers


@contextmanager
def crud_baseline(server: NatsServer) -> Iterator[tuple[str, int]]:
    """The synchronous alternative (bench/crud_app.py) on a free port; its URL and pid."""
    process = Process(
        "crud",
        [sys.executable, "-m", "bench.crud_app"],
        env=nats_env(server.url),
        ready=r"Uvicorn running on (http://[\d.]+:\d+)",
    ).start()
    try:
        assert process.ready_match is not None
        yield process.ready_match.group(1), process.pid
    finally:
        process.stop()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def jiffies(stat_line: str) -> tuple[int, int]:
    """(busy, all) clock ticks from `/proc/stat`'s first (`cpu`) line: busy is everything
    but idle and I/O wait, the kernel's own work included."""
    ticks = [int(v) for v in stat_line.split()[1:]]
    every = sum(ticks[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return every - ticks[3] - ticks[4], every


def machine_jiffies() -> tuple[int, int]:
    """The whole machine's CPU time so far, (busy, all), in clock ticks summed over its cores."""
    return jiffies(Path("/proc/stat").read_text().split("\n", 1)[0])


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores' worth of the machine busy between two `machine_jiffies` readings."""
    busy, every = after[0] - before[0], after[1] - before[1]
    return (os.cpu_count() or 1) * busy / every if every else 0.0


class CpuMeter:
    """The CPU named groups of processes, and the whole machine, use from now on."""

    def __init__(self, pids: Mapping[str, Sequence[int]]) -> None:
        self._pids = pids
        self._start = self._used()
        self._machine = machine_jiffies()

    def _used(self) -> dict[str, float]:
        return {name: sum(map(cpu_seconds, group)) for name, group in self._pids.items()}

    def cores(self, seconds: float) -> dict[str, float]:
        """Cores' worth each group has used, as a share of `seconds`."""
        return {name: (used - self._start[name]) / seconds for name, used in self._used().items()}

    def machine(self) -> float:
        """Busy cores of the whole machine since the meter was made."""
        return busy_cores(self._machine, machine_jiffies())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
