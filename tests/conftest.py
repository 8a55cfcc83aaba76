"""Fixture chain: temp store -> nats-server on a free port -> client -> JetStream;
and the reactor and API processes a module of end-to-end or browser tests uses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts.registry import Registry
from contracts.topology import ensure_topology
from domains import DOMAINS
from tests.domains import memos, notes
from tests.processes import (
    NATS_PASSWORD,
    NATS_USER,
    NatsServer,
    Process,
    Stack,
    api,
    mail_sink,
    own_stack,
    reactor,
    sink_port,
)

# The real domains and the tests' throwaway ones, for tests that run the machinery in-process.
REGISTRY = Registry([*DOMAINS, notes.DOMAIN, memos.DOMAIN])


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats-store")).start()
    yield server
    server.stop()


async def connect_test_client(url: str) -> Client:
    return await nats.connect(
        url, user=NATS_USER, password=NATS_PASSWORD, allow_reconnect=False, connect_timeout=2
    )


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of the test's own, for tests that change shared state."""
    server = NatsServer(tmp_path / "store").start()
    yield server
    server.stop()


@pytest.fixture
async def fresh_nc(fresh_server: NatsServer) -> AsyncIterator[Client]:
    client = await connect_test_client(fresh_server.url)
    yield client
    await client.close()


@pytest.fixture
async def fresh_js(fresh_nc: Client) -> JetStreamContext:
    context = fresh_nc.jetstream()
    await ensure_topology(context, REGISTRY.buckets)
    return context


@pytest.fixture
def fresh_stack(tmp_path: Path) -> Iterator[Stack]:
    """nats-server, a reactor and an API of the test's own."""
    with own_stack(tmp_path / "store") as stack:
        yield stack


@dataclass
class MailStack:
    """A stack whose reactor sends its mail to an SMTP sink of its own."""

    stack: Stack
    sink: Process
    mail_dir: Path

    def mail_to(self, address: str) -> list[str]:
        """The kept messages addressed to `address` (whatever its case), as text."""
        found = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            text = path.read_text(errors="replace")
            to = next((line for line in text.splitlines() if line.startswith("To:")), "")
            if to[3:].strip().casefold() == address.casefold():
                found.append(text)
        return found


# The mailer retries quickly in tests (0.2 s, doubling); API_* and REACTOR_* may add more.
MAILER_ENV = {"MAILER_RETRY_BASE": "0.2", "MAILER_MAX_ATTEMPTS": "30"}


@contextmanager
def own_mail_stack(
    folder: Path,
    *,
    reactor_env: Mapping[str, str] | None = None,
    api_env: Mapping[str, str] | None = None,
) -> Iterator[MailStack]:
    sink = mail_sink(folder / "mail").start()
    env = {**MAILER_ENV, "SMTP_PORT": str(sink_port(sink)), **(reactor_env or {})}
    try:
        with own_stack(folder / "store", reactor_env=env, api_env=api_env) as stack:
            yield MailStack(stack, sink, folder / "mail")
    finally:
        sink.stop()


@pytest.fixture(scope="module")
def mail_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailStack]:
    """nats-server, an SMTP sink, a reactor that mails to it and an API, for the module."""
    with own_mail_stack(tmp_path_factory.mktemp("mail-stack")) as stack:
        yield stack


@pytest.fixture(scope="module")
def reactor_process(nats_server: NatsServer) -> Iterator[Process]:
    """A reactor (dev mode) for the module, on the session's server."""
    process = reactor(nats_server.url).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api_process(nats_server: NatsServer) -> Iterator[Process]:
    """An API (uvicorn on a free port) for the module, on the session's server."""
    process = api(nats_server.url).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await connect_test_client(nats_server.url)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def js(nc: Client) -> JetStreamContext:
    context = nc.jetstream()
    await ensure_topology(context, REGISTRY.buckets)
    return context
