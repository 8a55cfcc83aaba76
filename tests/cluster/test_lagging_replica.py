"""A refusal stands on the store's latest events, even when a lagging replica answers the load.

On R3 any replica answers the direct gets that load an aggregate, and under
load a follower is often a round behind the leader that acknowledged the
last append. A reactor that did not create a shipment loads it to ship it;
a follower that has not applied the creation yet answers "no such
shipment", and no append would check that refusal. So a refusal decided on
a load asks the stream's leader for what the load missed.

Here one handler, connected to the EVENTS leader, creates shipments while
raw appends keep the cluster busy, and another, connected to a follower and
remembering nothing, ships each at once. Every ship must succeed, and the
test counts the loads the leader had to complete: without one the hazard
was not met and the test says so rather than passing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from nats.aio.client import Client

from contracts.events import StoredEvent
from contracts.topology import EVENTS_STREAM, ensure_topology
from domains.shipments.commands import CreateShipment, ShipShipment
from reactor.eventstore import EventStore
from reactor.handling import CommandHandler
from reactor.main import follow_replicas
from tests.conftest import REGISTRY, connect_test_client
from tests.helpers import command_handler, envelope, eventually
from tests.processes import NatsCluster

pytestmark = pytest.mark.cluster

WANTED = 3  # loads the leader completed: enough to know the hazard was met,
MAX_ROUNDS = 4000  # within this many create -> ship rounds
NOISE_WRITERS = 8  # concurrent raw appends that keep the followers a round behind
NOISE = b"x" * 2000  # (one in 150 to 500 loads lagged with these here)


class WatchedStore(EventStore):
    """The real store, counting the loads its `missed` had to complete."""

    completed = 0

    async def missed(self, aggregate: str, aggregate_id: str, position: int) -> list[StoredEvent]:
        events = await super().missed(aggregate, aggregate_id, position)
        self.completed += bool(events)
        return events


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path_factory.mktemp("lagging")).start()
    yield cluster
    cluster.stop()


async def test_a_running_reactor_learns_that_events_became_replicated(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """On a cluster of its own, where EVENTS starts as R1 (the other test's is R3)."""
    servers = NatsCluster(tmp_path_factory.mktemp("raised")).start()
    nc = await connect_test_client(servers.servers[0].url)
    js = nc.jetstream()
    stop = asyncio.Event()
    try:
        await ensure_topology(js, REGISTRY.buckets, replicas=1)
        assert (await js.stream_info(EVENTS_STREAM)).config.num_replicas == 1
        store = EventStore(nc, REGISTRY, replicated=False)  # as a reactor started now reads it
        following = asyncio.create_task(follow_replicas(js, store, stop, every=0.05))
        await ensure_topology(js, REGISTRY.buckets, replicas=3)  # another process, R3

        async def replicated() -> bool | None:
            return True if store.replicated else None

        await eventually(replicated)
        stop.set()
        await following
    finally:
        stop.set()
        await nc.close()
        servers.stop()


@pytest.fixture
async def clients(servers: NatsCluster) -> AsyncIterator[tuple[Client, Client]]:
    """A client at the EVENTS leader and one at a follower, the topology made R3."""
    first = await connect_test_client(servers.servers[0].url)
    js = first.jetstream()
    await ensure_topology(js, REGISTRY.buckets, replicas=3)
    info = await js.stream_info(EVENTS_STREAM)
    await first.close()
    assert info.cluster is not None
    assert info.cluster.leader is not None
    leader = servers.named(info.cluster.leader)
    follower = next(s for s in servers.servers if s is not leader)
    at_leader = await connect_test_client(leader.url)
    at_follower = await connect_test_client(follower.url)
    yield at_leader, at_follower
    await at_leader.close()
    await at_follower.close()


async def handler(nc: Client, store: EventStore) -> CommandHandler:
    return await command_handler(nc.jetstream(), store)


async def test_a_command_loaded_from_a_lagging_replica_is_not_refused_on_it(
    clients: tuple[Client, Client],
) -> None:
    at_leader, at_follower = clients
    creator = await handler(at_leader, EventStore(at_leader, REGISTRY, replicated=True))
    watched = WatchedStore(at_follower, REGISTRY, replicated=True)
    shipper = await handler(at_follower, watched)
    stop = asyncio.Event()

    async def noise() -> None:
        js = at_leader.jetstream()
        while not stop.is_set():
            await js.publish(f"ev.noise.{uuid.uuid4().hex}", NOISE, stream=EVENTS_STREAM)

    writers = [asyncio.create_task(noise()) for _ in range(NOISE_WRITERS)]
    refused: list[str] = []
    rounds = 0
    try:
        while watched.completed < WANTED and rounds < MAX_ROUNDS:
            rounds += 1
            create = envelope(CreateShipment("acct", "GB", "FR", 100))
            created = await creator.handle(create)
            assert created.status == "succeeded", created.error
            shipped = await shipper.handle(
                envelope(ShipShipment(), aggregate_id=create.aggregate_id)
            )
            if shipped.status != "succeeded":
                refused.append(f"{create.aggregate_id}: {shipped.error}")
    finally:
        stop.set()
        for task in writers:
            with contextlib.suppress(Exception):
                await task
    assert refused == [], f"{len(refused)} of {rounds} refused on a stale load: {refused[:3]}"
    assert watched.completed >= WANTED, (
        f"only {watched.completed} loads in {rounds} rounds were behind the leader: "
        "the hazard under test was not met"
    )
