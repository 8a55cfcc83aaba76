"""Real processes for tests: nats-server, the reactor, the API.

Each is started with its output read by a thread (so the pipe never fills),
is ready when a line matches its ready pattern, and is stopped by its pid:
SIGTERM, then SIGKILL if it lingers.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NATS_CONF = ROOT / "nats.conf"
# A user per role, as nats.conf has them: the tests' passwords, and their bcrypt
# hashes (cost 4: these check behaviour, not strength) for the server.
ROLES = {
    "api": (
        "api-test",
        "api-test-secret",
        "$2b$04$O0AwbAGYtLjO7TI3bshutOZF5P1S28sVr7lbuXfghMrbfJ06fmuGe",
    ),
    "reactor": (
        "reactor-test",
        "reactor-test-secret",
        "$2b$04$2jXHbzd0mesPUBDUHy5zHeW/0s4kIs3.Z572/pqtZbSEv1iv0v8mC",
    ),
    "operator": (
        "operator-test",
        "operator-test-secret",
        "$2b$04$SUzudMfps8z1HYWS0tMUZusZOANXhm.lhbX2YxfCQz871RW.1QxTO",
    ),
}
NATS_USER, NATS_PASSWORD, _ = ROLES["operator"]  # the tests' own clients


def role_env(*, hashes: bool) -> dict[str, str]:
    """Every role's user and password (and, for nats-server, the password's hash)."""
    env = {}
    for role, (user, password, hashed) in ROLES.items():
        prefix = f"NATS_{role.upper()}_"
        env[prefix + "USER"] = user
        env[prefix + "PASSWORD"] = password
        if hashes:
            env[prefix + "PASSWORD_HASH"] = f'"{hashed}"'
    return env


class Process:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        ready: str,
        ready_timeout: float = 20.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.ready_pattern = re.compile(ready)
        self.ready_timeout = ready_timeout
        self.lines: list[str] = []
        self.ready_match: re.Match[str] | None = None
        self._ready = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> Process:
        self.ready_match = None
        self._ready.clear()
        self._proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not become ready:\n{self.output()}")
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if not self._ready.is_set() and (m := self.ready_pattern.search(line)):
                self.ready_match = m
                self._ready.set()

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the process and wait for it; SIGKILL if it is still there after `timeout`."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._reader is not None:
            self._reader.join(5)  # the pipe ends when the process does
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        return self._proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


OURS = ("NATS_", "API_", "REACTOR_", "SMTP_", "MAIL", "SIGNIN_")


def nats_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    env.update(NATS_URL=url, LOG_LEVEL="INFO", **role_env(hashes=False))
    # Never a developer's SMTP sink: tests that read mail start one of their own.
    env.update(SMTP_PORT="1")
    return env


_LISTENING = re.compile(r"Listening for client connections on [\d.]+:(\d+)")
_MONITOR = re.compile(r"Starting http monitor on [\d.]+:(\d+)")


class NatsServer(Process):
    """nats-server with the project's nats.conf, on a free port, storing under `store_dir`."""

    def __init__(
        self,
        store_dir: Path,
        port: int = -1,
        config: Path = NATS_CONF,
        *,
        name: str = "nats-server",
        extra: Sequence[str] = (),
        monitor_port: int = -1,
    ) -> None:
        binary = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
        env = dict(os.environ, NATS_STORE_DIR=str(store_dir), **role_env(hashes=True))
        super().__init__(
            name,
            [binary, "-c", str(config), "-p", str(port), "-m", str(monitor_port), *extra],
            env=env,
            ready=r"Server is ready",
        )
        self.store_dir = store_dir

    def start(self) -> NatsServer:
        super().start()
        return self

    @property
    def port(self) -> int:
        """The client port it listens on (the last start's, by its log)."""
        found = [m for line in self.lines if (m := _LISTENING.search(line))]
        assert found, self.output()
        return int(found[-1].group(1))

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        """Its monitoring endpoint (a free port, as its log says)."""
        found = [m for line in self.lines if (m := _MONITOR.search(line))]
        assert found, self.output()
        return f"http://127.0.0.1:{found[-1].group(1)}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Stop it; a later start() listens on the same port (clients reconnect to it)."""
        if any(_LISTENING.search(line) for line in self.lines):
            self.argv[self.argv.index("-p") + 1] = str(self.port)
        return super().stop(sig, timeout)

    def restart(self) -> NatsServer:
        """Stop and start again on the same port and store."""
        self.stop()
        return self.start()


def healthy(server: NatsServer) -> bool:
    """nats-server's /healthz: 200 once its JetStream is current (in a cluster: has a leader)."""
    try:
        with urllib.request.urlopen(server.monitor_url + "/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:  # refused, or an HTTP error status (HTTPError is an OSError)
        return False


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held together while chosen, so all differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


class NatsCluster:
    """nats-servers routed into one JetStream cluster, each with a store of its own.

    The servers are named n1, n2, ... (the names stream_info's cluster.leader gives).
    """

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root, self.size = root, size
        self.servers = self._servers()

    def _servers(self) -> list[NatsServer]:
        # Every port chosen at once, the monitoring ones too: a random one (-m -1) taken
        # by a server that starts first could be a later server's route port.
        ports = free_ports(3 * self.size)
        clients, routes, monitors = (ports[i * self.size : (i + 1) * self.size] for i in range(3))
        solicit = ",".join(f"nats://127.0.0.1:{port}" for port in routes)
        return [
            NatsServer(
                self.root / f"n{i}",
                clients[i - 1],
                name=f"n{i}",
                monitor_port=monitors[i - 1],
                extra=[
                    *("--server_name", f"n{i}", "--cluster_name", "notify"),
                    *("--cluster", f"nats://127.0.0.1:{routes[i - 1]}", "--routes", solicit),
                ],
            )
            for i in range(1, self.size + 1)
        ]

    def start(self, within: float = 30.0, tries: int = 3) -> NatsCluster:
        """Start every server; ready once each says its JetStream is (a leader elected).

        Its ports are chosen before the servers start, and another process (an
        outgoing connection's local port) may take one meanwhile: then the
        cluster is made again on other ports, with empty stores. (A server says
        it is ready before it listens for routes, so a route port taken shows as
        a server that exits while the cluster forms.) Started servers are
        stopped if it fails.
        """
        try:
            for server in self.servers:
                server.start()
            deadline = time.monotonic() + within
            for server in self.servers:
                while not healthy(server):
                    assert all(s.running() for s in self.servers), "a server exited"
                    assert time.monotonic() < deadline, f"{server.name}: {server.output()}"
                    time.sleep(0.1)
        except (RuntimeError, AssertionError):
            self.stop()
            taken = any("address already in use" in s.output() for s in self.servers)
            if tries <= 1 or not taken:
                raise
            shutil.rmtree(self.root, ignore_errors=True)
            self.servers = self._servers()
            return self.start(within, tries - 1)
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    @property
    def url(self) -> str:
        """Every server's URL, comma-separated (NATS_URL of a cluster)."""
        return ",".join(server.url for server in self.servers)

    def named(self, name: str) -> NatsServer:
        return next(server for server in self.servers if server.name == name)


def reactor(nats_url: str, *extra: str, env: Mapping[str, str] | None = None) -> Process:
    return Process(
        "reactor",
        [sys.executable, "-m", "reactor", "--dev", *extra],
        env={**nats_env(nats_url), **(env or {})},
        ready=r"reactor ready",
    )


def mail_sink(folder: Path, port: int = 0) -> Process:
    """The project's SMTP sink (aiosmtpd), keeping what it receives in `folder`."""
    argv = [sys.executable, "-m", "reactor.mailsink", "serve", "--port", str(port)]
    return Process(
        "mailsink",
        [*argv, "--dir", str(folder)],
        env=dict(os.environ),
        ready=r"SMTP sink listening on [\d.]+:(\d+)",
    )


def sink_port(sink: Process) -> int:
    assert sink.ready_match is not None
    return int(sink.ready_match.group(1))


def api(nats_url: str, env: Mapping[str, str] | None = None) -> Process:
    return Process(
        "api",
        [sys.executable, "-m", "api"],
        env={**nats_env(nats_url), "API_PORT": "0", "API_DEV": "1", **(env or {})},
        ready=r"Uvicorn running on (http://[\d.]+:\d+)",
    )


@dataclass
class Stack:
    """nats-server, a reactor (dev mode) and an API, each its own process."""

    server: NatsServer
    api: Process
    reactor: Process

    @property
    def url(self) -> str:
        return base_url(self.api)


@contextmanager
def own_stack(
    store_dir: Path,
    *,
    config: Path = NATS_CONF,
    api_env: Mapping[str, str] | None = None,
    reactor_env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """A whole stack on a server of its own, stopped in reverse order afterwards."""
    server = NatsServer(store_dir, config=config).start()
    started: list[Process] = [server]
    try:
        the_reactor = reactor(server.url, env=reactor_env).start()
        started.append(the_reactor)
        the_api = api(server.url, env=api_env).start()
        started.append(the_api)
        yield Stack(server, the_api, the_reactor)
    finally:
        for process in reversed(started):
            process.stop()


def restart_api(api_process: Process) -> Process:
    """Stop the API and start it again on the same port (clients reconnect to it)."""
    port = base_url(api_process).rsplit(":", 1)[1]
    api_process.stop()
    api_process.env["API_PORT"] = port
    return api_process.start()


def base_url(api_process: Process) -> str:
    assert api_process.ready_match is not None
    return api_process.ready_match.group(1)


def run_module(
    nats_url: str, *args: str, timeout: float = 120, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m <args>` (a CLI tool of the project) against a server, to completion."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**nats_env(nats_url), **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
