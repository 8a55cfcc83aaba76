"""`task up`'s supervisor as a developer meets it: ready with a URL, a second one refused at
once, Ctrl-C stopping everything in order with exit 0."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.processes import ROOT, Process, free_ports, nats_env, role_env


def supervisor(tmp_path: Path, ports: dict[str, int], *flags: str) -> Process:
    env = {
        **nats_env(f"nats://127.0.0.1:{ports['nats']}"),
        **role_env(hashes=True),
        "NATS_STORE_DIR": str(tmp_path / "store"),
        "NATS_MONITOR_PORT": str(ports["monitor"]),
        "SMTP_PORT": str(ports["smtp"]),
        "MAIL_SINK_DIR": str(tmp_path / "mail"),
        "API_PORT": str(ports["api"]),
        "NATS_ROUTE_PORT": str(ports.get("routes", 6222)),
    }
    return Process(
        "supervisor",
        [sys.executable, "-m", "reactor.supervisor", *flags],
        env=env,
        ready=r"up: ready: open (http://\S+)",
        ready_timeout=60,
    )


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_starts_in_order_refuses_a_second_and_stops_cleanly(tmp_path: Path) -> None:
    ports = dict(zip(("nats", "monitor", "smtp", "api"), free_ports(4), strict=True))
    first = supervisor(tmp_path / "one", ports)
    first.start()
    try:
        assert first.ready_match is not None
        url = first.ready_match.group(1)
        assert url == f"http://127.0.0.1:{ports['api']}"
        assert httpx.get(url + "/readyz").status_code == 200
        parts = children_of(first.pid)
        assert len(parts) == 4  # nats-server, the sink, the reactor, the API

        second = supervisor(tmp_path / "two", ports)
        started = time.monotonic()
        done = subprocess.run(
            second.argv, env=second.env, cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 1
        assert time.monotonic() - started < 10
        assert f"port {ports['nats']}" in done.stderr
        assert "is in use" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1  # one line, nothing started
    finally:
        # Ctrl-C. (A terminal sends it to the foreground group; the parts run in
        # groups of their own, so the supervisor gets it alone, as here.)
        code = first.stop(signal.SIGINT, 40)
    assert code == 0
    assert "up: stopped" in first.lines
    assert not [line for line in first.lines if "Traceback" in line]
    assert not [pid for pid in parts if alive(pid)]
    ends = [line for line in first.lines if "reactor stopped" in line or "Server Exiting" in line]
    assert ends[0].startswith("[reactor]")
    assert ends[-1].startswith("[nats]")  # nats-server stops last


def free_runs(count: int, length: int) -> list[int]:
    """`count` first ports of `length` consecutive free ones each (none overlapping)."""
    found: list[int] = []
    for base in range(20_000, 60_000, 97):
        if all(free(port) for port in range(base, base + length)):
            found.append(base)
            if len(found) == count:
                return found
    raise AssertionError("no free ports")


def free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_cluster_up_keeps_serving_while_a_server_is_killed_and_started_again(
    tmp_path: Path,
) -> None:
    nats, routes, monitor = free_runs(3, 3)
    ports = {"nats": nats, "routes": routes, "monitor": monitor}
    ports |= dict(zip(("smtp", "api"), free_ports(2), strict=True))
    up = supervisor(tmp_path, ports, "--cluster")
    up.start()
    try:
        assert up.ready_match is not None
        url = up.ready_match.group(1)
        assert url == f"http://127.0.0.1:{ports['api']}"  # one URL, two API processes
        parts = children_of(up.pid)
        assert len(parts) == 8  # three nats-servers, the sink, two reactors, two APIs
        body = {"name": "Hull", "category": "City", "description": "one of three"}
        wait = {"Prefer": "wait=10"}
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.post("/api/locations", json=body, headers=wait).status_code == 201
            # A server killed by hand: the supervisor starts it again, and meanwhile
            # the cluster goes on (a POST may wait out an election, or be told to retry).
            (pid,) = [p for p in parts if f"-p {nats + 1} " in cmdline(p)]
            os.kill(pid, signal.SIGKILL)
            # Until one is created (or a minute passes): a fixed number of tries ran out in
            # milliseconds of instant 503s while an election took longer than usual.
            made: list[httpx.Response] = []
            deadline = time.monotonic() + 60
            for i in itertools.count():
                answer = client.post(
                    "/api/locations", json={**body, "name": f"Hull {i}"}, headers=wait
                )
                assert answer.status_code in (201, 202, 503), answer.text
                if answer.status_code == 503:
                    retry_after = answer.headers["retry-after"]
                    assert retry_after.isdigit()
                    time.sleep(min(int(retry_after), 1))  # as a client told to retry would
                else:
                    made.append(answer)
                if any(a.status_code == 201 for a in made):
                    break
                assert time.monotonic() < deadline, up.output()
        assert any("up: nats-2 exited" in line for line in up.lines)
        deadline = time.monotonic() + 30  # started again after 2 s
        while not [p for p in children_of(up.pid) if f"-p {nats + 1} " in cmdline(p)]:
            assert time.monotonic() < deadline, up.output()
            time.sleep(0.1)
    finally:
        code = up.stop(signal.SIGINT, 60)
    assert code == 0
    assert "up: stopped" in up.lines
    assert not [pid for pid in children_of(up.pid) if alive(pid)]
    assert not [pid for pid in parts if alive(pid)]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""
