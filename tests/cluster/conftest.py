"""A three-server NATS cluster (R3 everywhere), two reactors and two API instances."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import nats
import pytest
from nats.aio.client import Client

# Chromium for the page's test: the browser tests' fixtures, shared.
from tests.browser.conftest import browser, context, page  # noqa: F401
from tests.processes import NATS_PASSWORD, NATS_USER, NatsCluster, Process, api, base_url, reactor

REPLICAS = {"NATS_REPLICAS": "3"}


@dataclass
class ClusterStack:
    nats: NatsCluster
    reactors: list[Process]
    apis: list[Process]

    @property
    def urls(self) -> list[str]:
        return [base_url(p) for p in self.apis]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    """A module's own (one kills servers; another counts on where its APIs are)."""
    servers = NatsCluster(tmp_path_factory.mktemp("cluster")).start()
    started: list[Process] = []
    try:
        # The reactors know every server; each API is given one server only and
        # learns the others from it (as any client of a cluster does): so the
        # two APIs read through different servers.
        for i in (1, 2):
            env = {**REPLICAS, "REACTOR_ID": f"reactor-{i}"}
            started.append(reactor(servers.url, env=env).start())
        for server in servers.servers[:2]:
            started.append(api(server.url, env=REPLICAS).start())
        yield ClusterStack(servers, started[:2], started[2:])
    finally:
        for process in reversed(started):
            process.stop()
        servers.stop()


@pytest.fixture
async def cluster_nc(cluster: ClusterStack) -> AsyncIterator[Client]:
    """The tests' own client: any server, reconnecting to another when one goes."""
    client = await nats.connect(
        cluster.nats.url.split(","),
        user=NATS_USER,
        password=NATS_PASSWORD,
        connect_timeout=2,
        reconnect_time_wait=0.2,
        max_reconnect_attempts=-1,
    )
    yield client
    await client.close()
